fn main() -> std::process::ExitCode {
    kyc_api::cli::main()
}
