//! Fuzzing for `cargo test` on the stable toolchain: each parser of untrusted bytes gets inputs
//! made by mutating valid ones (bit flips, interesting bytes and integers, insertions, deletions,
//! duplications, splices of another seed, truncation) and some made of nothing but random
//! bytes; the test fails on a panic, a hang or whatever property the caller checks.
//!
//! Runs are seeded and repeatable: `BERTH_FUZZ_SEED` sets the seed (printed when a check fails),
//! `BERTH_FUZZ_ITERATIONS` the inputs per parser (default [`DEFAULT_ITERATIONS`], which
//! `make test` runs; `make fuzz` runs many more).

#![allow(clippy::print_stderr)]

/// Inputs per parser in an ordinary test run.
pub const DEFAULT_ITERATIONS: usize = 2_000;

/// A small, fast, seedable generator (xorshift64*): fuzzing needs repeatability, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `bound` (0 when it is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next_u64() % bound as u64) as usize
        }
    }

    /// True once in `n` draws.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seed of this run: `BERTH_FUZZ_SEED`, else a fixed one (so that `make test` repeats).
pub fn seed() -> u64 {
    std::env::var("BERTH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_be27)
}

/// Inputs per parser: `BERTH_FUZZ_ITERATIONS`, else [`DEFAULT_ITERATIONS`].
pub fn iterations() -> usize {
    std::env::var("BERTH_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS)
}

const INTERESTING_BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, b'\n', b'/', b'.'];
const INTERESTING_U32: [u32; 6] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x0001_0000];

/// `input` changed by one to four mutations; `others` are spliced from.
pub fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = *rng.pick(&INTERESTING_BYTES);
            }
            2 => {
                let n = 1 + rng.below(16);
                let bytes = rng.bytes(n);
                out.splice(at..at, bytes);
            }
            3 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(64)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            5 if out.len() >= 4 => {
                let i = rng.below(out.len() - 3);
                let value = rng.pick(&INTERESTING_U32).to_be_bytes();
                out[i..i + 4].copy_from_slice(&value);
            }
            6 if !others.is_empty() => {
                let other = rng.pick(others);
                let from = rng.below(other.len() + 1);
                let cut = rng.below(out.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Runs `check` on [`iterations`] inputs: mostly mutated `seeds`, one in twenty random bytes.
/// Returns how many inputs it ran. A panic in `check` names the parser, the seed and the input.
pub fn fuzz(name: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) -> usize {
    let run_seed = seed();
    let mut rng = Rng::new(run_seed ^ hash(name));
    let count = iterations();
    for n in 0..count {
        let input = if seeds.is_empty() || rng.one_in(20) {
            let len = rng.below(256);
            rng.bytes(len)
        } else {
            let base = rng.pick(seeds).clone();
            mutate(&mut rng, &base, seeds)
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        if let Err(panic) = outcome {
            eprintln!(
                "fuzz {name}: input {n} of seed {run_seed} panicked: {:02x?}",
                &input[..input.len().min(512)]
            );
            std::panic::resume_unwind(panic);
        }
    }
    if std::env::var_os("BERTH_FUZZ_ITERATIONS").is_some() {
        eprintln!("fuzz {name}: {count} inputs");
    }
    count
}

/// A stable hash of a parser's name, so that each gets its own stream of inputs.
fn hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_repeat_and_mutations_change_their_input() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.bytes(32), b.bytes(32));
        let seed = b"a valid input".to_vec();
        let mut rng = Rng::new(1);
        let changed = (0..100)
            .filter(|_| mutate(&mut rng, &seed, &[]) != seed)
            .count();
        assert!(changed > 80, "{changed}");
        assert_eq!(fuzz("count", &[seed], |_| {}), iterations());
    }
}
