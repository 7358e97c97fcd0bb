//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative Linux IPVS load balancing: VirtualService manifests in, minimal kernel changes out.
#[derive(Debug, Parser)]
#[command(name = "ipvs-reconciler", version, about, propagate_version = true)]
pub struct Cli {
    /// Network namespace to act in: a name under /run/netns or a path such as /proc/PID/ns/net.
    #[arg(long, global = true, env = "IPVS_RECONCILER_NETNS")]
    pub netns: Option<String>,
    /// Log lines as text (for people) or JSON (one object per line, for log pipelines). Logs go to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "IPVS_RECONCILER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the kernel's IPVS table (like `ipvsadm -Ln`, or as JSON / VirtualService YAML).
    Dump(DumpArgs),
    /// Show the operations that `apply` would send; exit 0 when nothing is to be done, 2 when there are changes.
    Plan(ApplyArgs),
    /// Plan and apply once; exit 0 on success, 1 on any failure.
    Apply(ApplyArgs),
    /// Keep the kernel in line with a directory of manifests: reconcile on change, resync periodically.
    Run(RunArgs),
    /// The Kubernetes agent of one node: VirtualServices that select this node, with backends from EndpointSlices,
    /// programmed and reported in their status (run it as a DaemonSet; see deploy/).
    Agent(AgentArgs),
    /// Remove what this program made on the node (its IPVS services, the VIPs it added, `ipvs0` when it made it
    /// and nothing else is on it, the sync daemons it started) and forget it; nothing else is touched. Refused
    /// while a `run` or `agent` uses the same state file, unless --force.
    Cleanup(CleanupArgs),
    /// Check manifests offline (no kernel needed); exit 1 when any object is invalid.
    Validate(ValidateArgs),
    /// Print every service and backend with its health, from a running `run` or `agent` (its `--listen`
    /// address).
    Status(StatusArgs),
    /// Convert a keepalived.conf or `ipvsadm -Sn` rules into VirtualService manifests (stdout, or one file per
    /// object with -o); what does not convert is listed on stderr with file and line. Exit 0: complete; 3:
    /// partial (the manifests are still written); 1: the input cannot be read or parsed.
    Import(ImportArgs),
    /// Print the VirtualService CustomResourceDefinition.
    Crd,
    /// Print a shell completion script, e.g. `ipvs-reconciler completions bash >
    /// /etc/bash_completion.d/ipvs-reconciler`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff: `ipvs-reconciler man | man -l -`), or write one page per command into --dir.
    Man(ManArgs),
}

/// `import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What to convert.
    #[command(subcommand)]
    pub from: ImportFrom,
    /// Namespace written into every object (default: none, as `dump -o yaml`; `kubectl apply -n` then decides).
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,
    /// Write one file per object (NAME.yaml) into this directory instead of printing to stdout; the director
    /// settings (connection timeouts, sync daemons), if any, go beside it as director.yaml (in its parent
    /// directory, where `run` does not read them as a manifest), unless --director-output says otherwise.
    #[arg(long = "output-dir", short = 'o', global = true)]
    pub output_dir: Option<PathBuf>,
    /// Write the director settings, if any, to this file (for `--director-config`). Default with -o DIR:
    /// director.yaml beside DIR, never overwritten; without -o: printed on stderr.
    #[arg(long, global = true)]
    pub director_output: Option<PathBuf>,
}

/// The formats `import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// A keepalived.conf: virtual_server sections (groups expanded), real and sorry servers, checkers, and
    /// lvs_timeouts / lvs_sync_daemon; includes are followed. VRRP stays keepalived's: a VIP of a vrrp_instance
    /// gets `bindAddress: false`.
    Keepalived {
        /// The configuration file (usually /etc/keepalived/keepalived.conf).
        file: PathBuf,
    },
    /// `ipvsadm -Sn` output (rules with numeric addresses; `-S` without `-n` is refused).
    Ipvsadm {
        /// The rules file; `-` or nothing: standard input.
        file: Option<PathBuf>,
    },
}

/// `completions` options.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man` options.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ipvs-reconciler.1 and a page per command (ipvs-reconciler-run.1, ...) into this directory instead.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Output formats of `dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The same rows and columns as `ipvsadm -Ln`.
    Table,
    /// The table as JSON.
    Json,
    /// VirtualService manifests that `apply` accepts and that reproduce the table.
    Yaml,
    /// `ipvsadm -Sn` rules.
    Rules,
}

/// `dump` options.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show counters (as `ipvsadm -Ln --stats`).
    #[arg(long, conflicts_with = "rate")]
    pub stats: bool,
    /// Show rates (as `ipvsadm -Ln --rate`).
    #[arg(long)]
    pub rate: bool,
    /// Exact numbers, no K/M suffixes (as `ipvsadm --exact`).
    #[arg(long)]
    pub exact: bool,
    /// Show connection thresholds (as `ipvsadm --thresholds`).
    #[arg(long)]
    pub thresholds: bool,
    /// Show persistent connection counts (as `ipvsadm --persistent-conn`).
    #[arg(long)]
    pub persistent_conn: bool,
    /// Show tunnel options (as `ipvsadm --tun-info`).
    #[arg(long)]
    pub tun_info: bool,
    /// Show the VIP interface's addresses instead of the IPVS table, each marked as added by this program
    /// (owned, from the state file) or not.
    #[arg(long)]
    pub addresses: bool,
    /// The VIP interface, with --addresses.
    #[arg(long, default_value = crate::netif::DEFAULT_INTERFACE, env = "IPVS_RECONCILER_VIP_INTERFACE")]
    pub vip_interface: String,
    /// The state file, with --addresses [default: as `apply`].
    #[arg(long, env = "IPVS_RECONCILER_STATE")]
    pub state: Option<PathBuf>,
}

/// Where manifests and ownership memory come from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Manifest files or directories (multi-document YAML), repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

/// Where the node's virtual addresses go.
#[derive(Debug, Clone, Args)]
pub struct AddressArgs {
    /// The dummy interface that holds the services' VIPs as /32 and /128 addresses (made when missing; an
    /// interface of that name that is not a dummy is refused).
    #[arg(long, default_value = crate::netif::DEFAULT_INTERFACE, env = "IPVS_RECONCILER_VIP_INTERFACE")]
    pub vip_interface: String,
    /// Manage no address at all: every VIP is bound by something else (VRRP, kube-vip, a BGP speaker, by
    /// hand). Addresses added earlier are left where they are, and still remembered as this program's.
    #[arg(long, env = "IPVS_RECONCILER_NO_BIND_ADDRESSES")]
    pub no_bind_addresses: bool,
}

/// The director's own settings: timeouts, sysctls, sync daemons. The file gives them all (the agent's ConfigMap
/// mounts one); the flags override it.
#[derive(Debug, Clone, Args)]
pub struct DirectorArgs {
    /// A YAML file of director settings (`timeouts`, `sysctls`, `syncDaemons`; see README).
    #[arg(long, env = "IPVS_RECONCILER_DIRECTOR_CONFIG")]
    pub director_config: Option<PathBuf>,
    /// IPVS TCP (established) timeout, seconds.
    #[arg(long)]
    pub timeout_tcp: Option<u32>,
    /// IPVS TCP-after-FIN timeout, seconds.
    #[arg(long)]
    pub timeout_tcpfin: Option<u32>,
    /// IPVS UDP timeout, seconds.
    #[arg(long)]
    pub timeout_udp: Option<u32>,
    /// A sysctl to keep set, KEY=VALUE; KEY is one of conntrack, expire_nodest_conn, expire_quiescent_template,
    /// conn_reuse_mode, ip_forward, ipv6_forwarding, arp_ignore (net.ipv4.conf.all). Repeatable. Sysctls not
    /// given are checked against the services and reported when they contradict them.
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctls: Vec<String>,
}

impl DirectorArgs {
    /// The configuration these flags give: the file's, with the flags over it.
    pub fn config(&self) -> anyhow::Result<crate::director::DirectorConfig> {
        let mut config = match &self.director_config {
            Some(path) => crate::director::DirectorConfig::load(path)?,
            None => crate::director::DirectorConfig::default(),
        };
        for (slot, flag) in [
            (&mut config.timeouts.tcp, self.timeout_tcp),
            (&mut config.timeouts.tcp_fin, self.timeout_tcpfin),
            (&mut config.timeouts.udp, self.timeout_udp),
        ] {
            if flag.is_some() {
                *slot = flag;
            }
        }
        for pair in &self.sysctls {
            let Some((key, value)) = pair.split_once('=') else {
                anyhow::bail!("--sysctl {pair:?}: expected KEY=VALUE");
            };
            let value: u32 =
                value.trim().parse().map_err(|_| anyhow::anyhow!("--sysctl {pair:?}: {value:?} is not a number"))?;
            config.set_sysctl(key.trim(), value);
        }
        config.check("flags")?;
        Ok(config)
    }
}

/// `plan` / `apply` options.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifests.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The VIP interface.
    #[command(flatten)]
    pub addresses: AddressArgs,
    /// The director's settings.
    #[command(flatten)]
    pub director: DirectorArgs,
    /// Which services this program owns, remembered across runs [default: /var/lib/ipvs-reconciler/state.json,
    /// or state-NAME.json beside it with --netns NAME].
    #[arg(long, env = "IPVS_RECONCILER_STATE")]
    pub state: Option<PathBuf>,
    /// Allow a pass that deletes more than half of the owned services (and more than 10).
    #[arg(long)]
    pub allow_mass_delete: bool,
}

/// The flags of the long-running modes (`run`, `agent`).
#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Which services this program owns, remembered across runs [default: /var/lib/ipvs-reconciler/state.json,
    /// or state-NAME.json beside it with --netns NAME].
    #[arg(long, env = "IPVS_RECONCILER_STATE")]
    pub state: Option<PathBuf>,
    /// Allow a pass that deletes more than half of the owned services (and more than 10).
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Quiet period after a change before reconciling, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub quiet_ms: u64,
    /// Full re-read and repair of drift every this many seconds.
    #[arg(long, default_value_t = 60)]
    pub resync_seconds: u64,
    /// The VIP interface.
    #[command(flatten)]
    pub addresses: AddressArgs,
    /// The director's settings.
    #[command(flatten)]
    pub director: DirectorArgs,
}

impl LoopArgs {
    /// The agent loop's configuration these flags give.
    pub fn config(&self) -> crate::agent::AgentConfig {
        let mut config = crate::agent::AgentConfig::new(
            std::time::Duration::from_millis(self.quiet_ms),
            std::time::Duration::from_secs(self.resync_seconds),
        );
        config.allow_mass_delete = self.allow_mass_delete;
        config
    }
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory of manifests to watch.
    #[arg(long)]
    pub manifests: PathBuf,
    /// Loop flags.
    #[command(flatten)]
    pub common: LoopArgs,
    /// HTTP address for /metrics, /healthz, /readyz and /status (`ipvs-reconciler status` reads it), such as
    /// 127.0.0.1:9469; none when not given.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// `status` options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The `--listen` address of the running `run` or `agent`.
    #[arg(long, default_value = "http://127.0.0.1:9469")]
    pub url: String,
    /// Print the JSON document as served.
    #[arg(long)]
    pub json: bool,
}

/// `cleanup` options.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The state file that lists what this program made [default: as `apply`].
    #[arg(long, env = "IPVS_RECONCILER_STATE")]
    pub state: Option<PathBuf>,
    /// Print what would be removed ("would remove ...") and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Clean up even while a running `run` or `agent` holds the state file (it puts back, at its next pass, what
    /// its sources still declare).
    #[arg(long)]
    pub force: bool,
}

/// `agent` options.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// This node's name (the Downward API's spec.nodeName, as env NODE_NAME in the DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Loop flags.
    #[command(flatten)]
    pub common: LoopArgs,
    /// Which entries this node keeps in each VirtualService's status.nodes: all, failures (only while not
    /// programmed: a healthy fleet writes nothing), none (this node's entries are withdrawn).
    #[arg(long, value_enum, default_value_t = crate::agent::status::StatusReport::All)]
    pub status_report: crate::agent::status::StatusReport,
    /// Which VirtualServices are programmed: pools (only those a VirtualServicePool admits: its addresses or
    /// fwmarks granted to the object's namespace) or open (every valid object: single-tenant clusters). Address
    /// safety applies in both.
    #[arg(long, value_enum, env = "IPVS_RECONCILER_ADMISSION", default_value_t = crate::source::admission::AdmissionMode::Pools)]
    pub admission: crate::source::admission::AdmissionMode,
    /// HTTP address for /metrics, /healthz, /readyz and /status.
    #[arg(long, default_value = crate::agent::metrics::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// The verdict over all nodes (conditions), written by the agent elected among them.
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

/// The election of the agent that writes every VirtualService's conditions, and how it judges them.
#[derive(Debug, Args)]
pub struct VerdictArgs {
    /// This agent's pod (the Downward API's metadata.name): its identity in the election. Without it and
    /// POD_NAMESPACE the agent takes no part and no conditions are written by it.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The agents' namespace (the Downward API's metadata.namespace): where their pods and the
    /// ipvs-reconciler-status Lease are.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// The agent pods, among the pods of that namespace (a label selector): a node should program an object only
    /// where one is scheduled, and a node whose agent pod is not Ready stalls its objects.
    #[arg(long, default_value = crate::verdict::DEFAULT_AGENT_SELECTOR)]
    pub agent_selector: String,
    /// How long the leader's Lease lasts without renewal (client-go's default).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: std::time::Duration,
    /// How long the leader keeps writing without renewing its Lease (shorter than the lease).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: std::time::Duration,
    /// How often the Lease is renewed, or tried by the other agents.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: std::time::Duration,
    /// A Ready agent that has not reported an object's new generation after this long makes it Stalled
    /// (NotReporting).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub progress_deadline: std::time::Duration,
}

/// `validate` options.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files or directories (multi-document YAML), repeatable; `-` reads standard input (`kustomize build
    /// | ipvs-reconciler validate --kubernetes -f -`). Documents of other kinds are skipped.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Check the manifests a cluster will receive, as the agent reads them: `backendsFrom` and `nodeSelector`
    /// allowed (their names and selectors checked as Kubernetes would), VirtualServicePools checked too, and every
    /// object named, once.
    #[arg(long)]
    pub kubernetes: bool,
}
