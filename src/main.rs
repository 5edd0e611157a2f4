//! `avb`: the one binary. Thin: parse the command line, call library code.

mod admin;
mod data_lock;
mod demo_home;
mod doctor;
mod image;
mod malloc_arenas;
mod run;
mod speak;
mod stack;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "avb",
    version,
    about = "AgentVoiceBox: durable MCP tool calls on Temporal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the api (MCP on /mcp, legacy SSE, REST) against a Temporal server.
    Serve(run::ServeArgs),
    /// Run workers for the given task queues.
    Worker(run::WorkerArgs),
    /// First run: api + every worker in one process; starts a Temporal dev server if none answers.
    Dev(run::DevArgs),
    /// Serve MCP over another transport (stdio).
    Mcp(run::McpArgs),
    /// Synthesize speech to a WAV file with the local engine (no Temporal needed).
    Speak(speak::SpeakArgs),
    /// Tenants and API keys (the database of `DATABASE_URL`, default `$AVB_DATA_DIR/avb.db`).
    Admin(admin::AdminArgs),
    /// The `avb` container image (built locally, no registry).
    Image(image::ImageArgs),
    /// Check every configured dependency, then run one real generate_speech; non-zero exit
    /// status names what failed.
    Doctor(doctor::DoctorArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Speak(_) | Command::Worker(_) | Command::Dev(_) | Command::Doctor(_)
    ) {
        // They load the speech engine (a worker may, depending on its queues).
        malloc_arenas::cap_by_re_executing();
    }
    let result = match cli.command {
        // Its own exit status: which checks failed is the answer, not an error.
        Command::Doctor(args) => return doctor::run(args),
        Command::Speak(args) => speak::run(args),
        Command::Serve(args) => run::block_on(run::serve(args)),
        Command::Worker(args) => run::block_on(run::worker(args)),
        Command::Dev(args) => run::block_on(run::dev(args)),
        Command::Mcp(args) => run::block_on(run::mcp(args)),
        Command::Admin(args) => run::block_on(admin::run(args)),
        Command::Image(args) => run::block_on(image::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
