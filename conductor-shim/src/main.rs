//! `conductor-shim`: a minimal Ironic-compatible conductor for driving `ironic-agent`.

fn main() -> std::process::ExitCode {
    conductor_shim::cli::main()
}
