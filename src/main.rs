use clap::Parser;
use warren::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json_logs = matches!(&cli.command, Command::Serve(args) if args.log_format == "json");
    warren::telemetry::init(json_logs);
    let result = match cli.command {
        Command::Serve(args) => warren::commands::serve(args).await,
        Command::Migrate(args) => warren::commands::migrate(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warren: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
