fn main() -> std::process::ExitCode {
    monitor::cli::main()
}
