//! `cargo bench -p callgrid-sim`: the same figures as `callgrid-sim bench`, without the
//! memory probes (they need the CLI binary to re-run itself).

fn main() -> anyhow::Result<()> {
    // cargo bench passes `--bench`; any other argument is a filter we do not support.
    let figures =
        callgrid_sim::bench::run(callgrid_sim::bench::REPETITIONS_DEFAULT, true, false, true)?;
    print!("{}", callgrid_sim::bench::render(&figures));
    Ok(())
}
