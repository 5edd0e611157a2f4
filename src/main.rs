//! `avb`: the one binary. Thin: parse the command line, call library code.

mod speak;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "avb", version, about = "AgentVoiceBox: durable MCP tool calls on Temporal")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Synthesize speech to a WAV file with the local engine (no Temporal needed).
    Speak(speak::SpeakArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Speak(args) => speak::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
