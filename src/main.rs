// jemalloc instead of glibc's malloc: a list streamed with `all=true` is
// allocated on the database thread and freed on the HTTP worker, and glibc's
// per-arena locks made those frees contend (24,000 context switches for
// 100,000 identities); see BENCHMARKS.md, "Performance, third round".
// Built unprefixed (Cargo.toml), it is also the C libraries' malloc: libpq's
// results, freed after each chunk, no longer make glibc hand their pages
// back to the kernel and fault them in again ("Performance, sixth round").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    kyc_api::cli::main()
}
