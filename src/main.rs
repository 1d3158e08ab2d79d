use clap::Parser;
use warren::cli::{user, Cli, Command};

/// The heartbeat path allocates for every request (headers, JSON, channels); a profile under
/// load showed glibc's malloc/free at about a seventh of the process's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json_logs = matches!(&cli.command, Command::Serve(args) if args.log_format == "json");
    // The user commands print only their answer: no log lines on their stdout.
    if matches!(
        &cli.command,
        Command::Serve(_) | Command::Migrate(_) | Command::Agent(_)
    ) {
        warren::telemetry::init(json_logs);
    }
    let result = match cli.command {
        Command::Serve(args) => warren::commands::serve(args).await,
        Command::Migrate(args) => warren::commands::migrate(args).await,
        Command::Agent(args) => warren::commands::agent(args).await,
        Command::Login(args) => user::login(args).await,
        Command::Tunnels { server, command } => user::tunnels(server, command).await,
        Command::Tokens { server, command } => user::tokens(server, command).await,
        Command::Events { server, command } => warren::cli::events::events(server, command).await,
        Command::Webhooks { server, command } => {
            warren::cli::webhooks::webhooks(server, command).await
        }
        Command::Openapi => {
            print!("{}", warren::http::openapi::yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warren: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
