//! Spreading a kernel's independent parts over rayon's pool: with the `rayon` feature (native
//! builds, and the threaded wasm module's Web Worker pool), sequential otherwise.

/// Multiply-adds (or element visits) below which a kernel stays on the calling thread: less
/// than ~0.1 ms of work, where a fan-out costs more than it saves.
pub const MIN_WORK: usize = 1 << 18;

/// How many parts `work` is worth splitting into (1 without the `rayon` feature).
pub fn parts(work: usize) -> usize {
    #[cfg(feature = "rayon")]
    {
        if work < 2 * MIN_WORK { 1 } else { rayon::current_num_threads().min(work / MIN_WORK).max(1) }
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = work;
        1
    }
}

/// Calls `f` on every item, on the pool's threads when there is more than one item.
pub fn run<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    #[cfg(feature = "rayon")]
    if items.len() > 1 {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
        return;
    }
    items.into_iter().for_each(f);
}

/// `0..n` cut into `parts` ranges of nearly equal length, each a multiple of `align` except
/// the last.
pub fn ranges(n: usize, parts: usize, align: usize) -> Vec<core::ops::Range<usize>> {
    let parts = parts.clamp(1, n.div_ceil(align).max(1));
    let step = n.div_ceil(parts).next_multiple_of(align);
    (0..parts).map(|p| (p * step).min(n)..((p + 1) * step).min(n)).filter(|r| !r.is_empty()).collect()
}

/// Splits `data` at the given increasing offsets: pieces `[0, cuts[0])`, `[cuts[0], cuts[1])`,
/// …, `[cuts[last], len)`.
pub fn split_at<'a, T>(mut data: &'a mut [T], cuts: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for &cut in cuts {
        let (head, tail) = data.split_at_mut(cut - at);
        out.push(head);
        data = tail;
        at = cut;
    }
    out.push(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        for (n, parts, align) in [(77, 2, 4), (10, 3, 1), (3, 8, 4), (1000, 7, 8), (0, 2, 4)] {
            let r = ranges(n, parts, align);
            assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), n);
            for w in r.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert_eq!(w[0].start % align, 0);
            }
        }
    }

    #[test]
    fn split_at_cuts() {
        let mut v: Vec<u32> = (0..10).collect();
        let parts = split_at(&mut v, &[3, 7]);
        assert_eq!(parts[0], &[0, 1, 2]);
        assert_eq!(parts[1], &[3, 4, 5, 6]);
        assert_eq!(parts[2], &[7, 8, 9]);
    }
}
