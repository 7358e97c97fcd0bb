fn main() {
    std::process::exit(ipvs_reconciler::cli::main());
}
