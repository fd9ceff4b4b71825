//! `harness`: see `harness --help`.

/// jemalloc, not the system's: a simulation allocates and frees small buffers
/// by the million (every segment, frame, packet and trace event), and glibc's
/// malloc and free were ~10 % of a 200-user run. `harness bench --only
/// simulation` side by side: +8–13 % at 10, 50 and 200 users, peak RSS within
/// 2 % (README "Benchmarks"). mimalloc gained less (+3–9 % at 200 users) and
/// took 25–60 % more memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
