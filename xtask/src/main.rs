//! Developer automation for monitor. `cargo xtask --help` lists the commands; the
//! README's two commands are `cargo xtask run` and `cargo xtask test`.
mod bench;
mod busy;
mod docs;
mod engine_bench;
mod fleet_bench;
mod hold_bench;
mod kernels;
mod setup;
mod startup_bench;
mod stats_bench;
mod storms;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Set up, build, run, test and benchmark monitor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make this machine ready to build and test (idempotent): the nightly's rust-src,
    /// bpf-linker built against the nightly's LLVM, and the packages and services the
    /// tests use (docker.io, rsyslog, busybox-static, qemu-system-x86, a running dockerd).
    Setup,
    /// Set up, then build the agent and its kernel programs (release).
    Build,
    /// Set up, build, then run the agent as root: the daemon with the default rules
    /// (`rules/`), alerts as text on stdout, colored on a terminal. Arguments after
    /// `--` that start with `-` are added to the daemon's flags
    /// (`-- --aggregate-window 60`); others replace the command (`-- events` streams
    /// the raw events as JSON).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, then run the whole test suite (unit, kernel and end-to-end
    /// tests; needs root). Arguments after `--` go to `cargo test`; without any, the
    /// kernel matrix (`test-kernels`) runs afterwards.
    Test {
        /// The quick tier, in a few minutes: the unit tests and the fast end-to-end
        /// tests (util::QUICK_TESTS); no container images, no NATS cluster, no
        /// kernel matrix.
        #[arg(long)]
        quick: bool,
        /// Run N busy containers in the background for the whole run (kernel matrix
        /// included): each execs, opens files and connects all the time, as a node's
        /// containers do. The suite must pass alongside them.
        #[arg(long, value_name = "N", default_value_t = 0)]
        busy: usize,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, then run the kernel matrix: `monitor probes` and the sensor tests
    /// on this host's kernel and on Debian's stock 6.1 and 6.12 kernels booted under
    /// qemu, 6.12 also with the bpf LSM left out of `lsm=` (fentry instead of LSM
    /// programs) (needs root; kernels are fetched with apt and cached). One line per kernel
    /// and program type, then a summary line; fails when a required check fails.
    TestKernels(kernels::KernelsArgs),
    /// Measure the rule engine's throughput, then build and measure the sensor's
    /// overhead and throughput (that part needs root; `--engine-only` skips it).
    Bench(bench::BenchArgs),
    /// Build, then regenerate the generated parts of docs/ (the field reference in
    /// docs/rules.md, from `monitor fields --markdown`).
    Docs,
    /// One storm of `bench` (the bench runs it in a child process).
    #[command(hide = true)]
    Storm(storms::StormArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run(),
        Command::Build => setup::run().and_then(|()| util::build_release()),
        Command::Run { args } => setup::run()
            .and_then(|()| util::build_release())
            .and_then(|()| util::run_monitor(&args)),
        Command::Test { quick, busy, args } => setup::run()
            .and_then(|()| util::build_release())
            .and_then(|()| busy::Busy::start(busy))
            .and_then(|_busy| {
                util::run_tests(quick, &args)?;
                if args.is_empty() && !quick {
                    kernels::run(&kernels::KernelsArgs::default())?;
                }
                Ok(())
            }),
        Command::TestKernels(args) => setup::run()
            .and_then(|()| util::build_release())
            .and_then(|()| kernels::run(&args)),
        Command::Bench(args) => bench::run(&args),
        Command::Docs => util::build_release().and_then(|()| docs::run()),
        Command::Storm(args) => storms::storm(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
