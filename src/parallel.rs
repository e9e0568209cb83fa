//! Work on every core for the CPU-bound reads of a migration set (reading and parsing the
//! files, linting them): plain scoped threads, in order, no pool to keep.

/// `f` over `items`, in order, on every core (inline for a few items or a single core).
pub fn map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if threads < 2 || items.len() < 64 {
        return items.into_iter().map(f).collect();
    }
    let size = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(size).collect());
    }
    let f = &f;
    // The calling thread takes the first chunk itself: one thread (and its allocator arena,
    // grown page by page) fewer to start.
    let mut chunks = chunks.into_iter();
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let workers: Vec<_> =
            chunks.map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<U>>())).collect();
        let mut out: Vec<U> = first.into_iter().map(f).collect();
        for w in workers {
            out.extend(w.join().expect("a worker thread panicked"));
        }
        out
    })
}
