fn main() -> std::process::ExitCode {
    chatserver::cli::main()
}
