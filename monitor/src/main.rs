fn main() -> std::process::ExitCode {
    monitor::commands::main()
}
