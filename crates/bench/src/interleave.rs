//! One-client runs of several engines, interleaved round by round.
//!
//! One client waits for one durable write per call, so its rate is the disk's latency after a
//! short idle gap, and this VM's disk drifts by 2× within minutes. Engines measured one after
//! another can meet different disks. Here every engine is up at once, and each round gives each
//! engine a slice of calls, one engine after another, the order rotated from round to round; the
//! ratios are read over all rounds and round by round. Round 0 warms every engine up
//! (connections, caches, node's JIT) and is not counted.

use std::fmt::Write as _;

use anyhow::Context;

/// A slice of one engine: `(round, calls)` runs `calls` one-client calls of round `round` and
/// answers the seconds they took.
pub(crate) type Slice<'a> = Box<dyn Fn(u64, u64) -> anyhow::Result<f64> + 'a>;

pub(crate) struct Interleaved {
    rounds: u64,
    calls_per_round: u64,
    /// Per engine, ours first: its name and the seconds of each counted round.
    engines: Vec<(String, Vec<f64>)>,
}

impl Interleaved {
    /// Runs `rounds` counted rounds (and the warm-up) of `calls_per_round` calls per engine.
    pub(crate) fn run(
        engines: Vec<(String, Slice<'_>)>,
        rounds: u64,
        calls_per_round: u64,
    ) -> anyhow::Result<Interleaved> {
        anyhow::ensure!(rounds > 0 && calls_per_round > 0, "no interleaved rounds");
        let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
        for round in 0..=rounds {
            for offset in 0..engines.len() {
                let which = (round as usize + offset) % engines.len();
                let (name, slice) = &engines[which];
                let took = slice(round, calls_per_round)
                    .with_context(|| format!("{name}: round {round} of the interleaved run"))?;
                if round > 0 {
                    seconds[which].push(took);
                }
            }
        }
        Ok(Interleaved {
            rounds,
            calls_per_round,
            engines: engines
                .into_iter()
                .map(|(name, _)| name)
                .zip(seconds)
                .collect(),
        })
    }

    /// Calls per second of engine `which` over all rounds.
    fn rate(&self, which: usize) -> f64 {
        let (_, seconds) = &self.engines[which];
        (self.calls_per_round * seconds.len() as u64) as f64 / seconds.iter().sum::<f64>()
    }

    /// A table of the engines (`unit` names what a call is), and a verdict line for every engine
    /// that `target` gives a target ratio (ours ÷ theirs, over all rounds).
    pub(crate) fn markdown(&self, unit: &str, target: impl Fn(&str) -> Option<f64>) -> String {
        let mut out = String::new();
        let Some((_, ours)) = self.engines.first() else {
            return out;
        };
        let _ = writeln!(
            out,
            "One client, interleaved: every engine up at once, {} rounds of {} calls each, the \
             engines' order rotated from round to round, so that each round's engines meet the \
             same disk.\n\n\
             | engine | {unit}/s, all rounds | slowest and fastest round | ours ÷ engine: all rounds | per round: median (min–max) |\n\
             | --- | ---: | ---: | ---: | ---: |",
            self.rounds, self.calls_per_round
        );
        let per_second = |seconds: f64| self.calls_per_round as f64 / seconds;
        let mut verdicts = String::new();
        for (which, (name, seconds)) in self.engines.iter().enumerate() {
            let rates: Vec<f64> = seconds.iter().copied().map(per_second).collect();
            let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let fastest = rates.iter().copied().fold(0.0, f64::max);
            let overall = self.rate(0) / self.rate(which);
            // Ours ÷ theirs in one round is their seconds ÷ ours (the same calls).
            let mut ratios: Vec<f64> = ours.iter().zip(seconds).map(|(o, t)| t / o).collect();
            ratios.sort_by(f64::total_cmp);
            let median = ratios[ratios.len() / 2];
            let (low, high) = (ratios[0], ratios[ratios.len() - 1]);
            let _ = writeln!(
                out,
                "| {name} | {:.0} | {slowest:.0}–{fastest:.0} | {overall:.2}× | {median:.2}× ({low:.2}–{high:.2}) |",
                self.rate(which)
            );
            if which == 0 {
                continue;
            }
            if let Some(target) = target(name) {
                let _ = writeln!(
                    verdicts,
                    "- One client, interleaved, against {name}: **{overall:.2}×** over all rounds \
                     (target ≥ {target}: {}).",
                    if overall >= target { "met" } else { "not met" }
                );
            }
        }
        out.push('\n');
        out.push_str(&verdicts);
        out
    }
}
