//! Agent memory with large caches: 10,000 VirtualServices (each `backendsFrom` one Service) and 10,000
//! EndpointSlices (10 ready endpoints each) fed through the Kubernetes source's event handling into the desired
//! state, as the watchers deliver them (one list each), then one snapshot taken as the agent's pass does.
//! Prints the process's resident memory (VmRSS, VmHWM) before and after. Target (issue 6): ≤ 64 MiB.
//!
//! `cargo bench --bench agent_memory`

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::runtime::watcher::Event;

use ipvs_reconciler::api::VirtualService;
use ipvs_reconciler::source::DesiredState;
use ipvs_reconciler::source::kubernetes::{KubeEvent, KubeFeed, SERVICE_NAME_LABEL};

const N: usize = 10_000;

/// Counts live heap bytes and blocks, to say what each phase keeps (resident memory adds the allocator's overhead).
struct Counting;

static LIVE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static LIVE_BLOCKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live(phase: &str) {
    let bytes = LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed);
    let blocks = LIVE_BLOCKS.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{phase}: {:.1} MiB live in {blocks} blocks; VmRSS {} MiB",
        bytes as f64 / 1048576.0,
        status_kib("VmRSS:") / 1024
    );
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn virtual_service(i: usize) -> VirtualService {
    let spec = serde_json::json!({
        "address": format!("198.18.{}.{}", i / 250, i % 250 + 1), "port": 80,
        "backendsFrom": [{"service": format!("svc-{i}"), "port": "http"}],
    });
    let mut object = VirtualService::new(&format!("vs-{i}"), serde_json::from_value(spec).unwrap_or_default());
    object.metadata.namespace = Some("default".to_owned());
    object.metadata.generation = Some(1);
    object.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap()));
    object
}

fn slice(i: usize) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}-abcde")),
            namespace: Some("default".to_owned()),
            labels: Some([(SERVICE_NAME_LABEL.to_owned(), format!("svc-{i}"))].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        ports: Some(vec![EndpointPort { name: Some("http".to_owned()), port: Some(8080), ..EndpointPort::default() }]),
        endpoints: Some(
            (0..10)
                .map(|d| Endpoint {
                    addresses: vec![format!("10.{}.{}.{}", i / 250 % 250, i % 250, d + 1)],
                    conditions: Some(EndpointConditions { ready: Some(true), ..EndpointConditions::default() }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
    }
}

fn main() {
    let (rss0, _) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1");
    let started = std::time::Instant::now();
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Init)));
    for i in 0..N {
        feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitApply(virtual_service(i)))));
    }
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitDone)));
    live("VirtualServices listed");
    feed.on_event(KubeEvent::Slice(Box::new(Event::Init)));
    for i in 0..N {
        feed.on_event(KubeEvent::Slice(Box::new(Event::InitApply(slice(i)))));
    }
    feed.on_event(KubeEvent::Slice(Box::new(Event::InitDone)));
    live("EndpointSlices listed");
    feed.on_event(KubeEvent::Node(Box::new(Event::Init)));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitApply(Node::default()))));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitDone)));
    let listed = started.elapsed();
    let snapshot = state.take();
    live("snapshot taken");
    let backends: usize = snapshot.table.services.values().map(|s| s.dests.len()).sum();
    assert!(state.is_ready());
    assert_eq!((snapshot.table.services.len(), backends), (N, N * 10));
    let change = std::time::Instant::now();
    feed.on_event(KubeEvent::Slice(Box::new(Event::Apply(slice(7)))));
    let mut edited = slice(7);
    if let Some(endpoints) = edited.endpoints.as_mut() {
        endpoints[0].conditions = Some(EndpointConditions { ready: Some(false), ..EndpointConditions::default() });
    }
    feed.on_event(KubeEvent::Slice(Box::new(Event::Apply(edited))));
    let one = state.take();
    let changed = change.elapsed();
    assert_eq!(one.changed.len(), 1);
    println!(
        "{N} VirtualServices, {N} EndpointSlices ({backends} backends): lists applied in {listed:?}; one slice's \
         readiness change → snapshot in {changed:?}; VmRSS {} MiB (start {} MiB), peak VmHWM {} MiB",
        status_kib("VmRSS:") / 1024,
        rss0 / 1024,
        status_kib("VmHWM:") / 1024
    );
}
