//! When and where anomalies are injected.

use std::time::Duration;

use crate::rng::Rng;

use super::AnomalyKind;

/// One injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// Entity index (0-based; `dwcp-node-01` is 0).
    pub entity: usize,
    /// What happens.
    pub kind: AnomalyKind,
    /// First anomalous step.
    pub start_step: u64,
    /// Number of anomalous steps.
    pub steps: u64,
}

/// Parses `ENTITY:KIND:START:DURATION`, e.g. `2:spike:5m:1m` (entity 1-based as in
/// `dwcp-node-02`; times from the start of the simulation, converted with `step`).
pub fn parse_injection(s: &str, step: Duration) -> Result<Injection, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [entity, kind, start, duration] = parts[..] else {
        return Err(format!(
            "invalid anomaly {s:?}: expected ENTITY:KIND:START:DURATION, e.g. 2:spike:5m:1m"
        ));
    };
    let entity: usize = entity
        .parse()
        .ok()
        .filter(|e| *e >= 1)
        .ok_or_else(|| format!("invalid anomaly {s:?}: entity must be a number from 1"))?;
    let to_steps = |t: &str| -> Result<u64, String> {
        let d = humantime::parse_duration(t).map_err(|e| format!("invalid anomaly {s:?}: {t:?}: {e}"))?;
        Ok((d.as_millis() / step.as_millis().max(1)) as u64)
    };
    Ok(Injection {
        entity: entity - 1,
        kind: kind.parse()?,
        start_step: to_steps(start)?,
        steps: to_steps(duration)?.max(1),
    })
}

/// Anomalies every `every` steps after `warmup` steps, cycling through kinds and entities,
/// each lasting `length` steps (spikes a third of that), until `total` steps.
pub fn random_schedule(
    entities: usize,
    total: u64,
    warmup: u64,
    every: u64,
    length: u64,
    seed: u64,
) -> Vec<Injection> {
    let mut rng = Rng::new(seed ^ 0xa11);
    let mut out = Vec::new();
    let mut start = warmup;
    let mut i = 0;
    while entities > 0 && every > 0 && start + length <= total {
        let kind = AnomalyKind::ALL[i % AnomalyKind::ALL.len()];
        let steps = if kind == AnomalyKind::Spike { (length / 3).max(1) } else { length.max(1) };
        out.push(Injection { entity: rng.below(entities as u64) as usize, kind, start_step: start, steps });
        start += every + rng.below(every / 2 + 1);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let i = parse_injection("2:cpu_saturation:5m:1m", Duration::from_secs(10)).unwrap();
        assert_eq!(i, Injection { entity: 1, kind: AnomalyKind::CpuSaturation, start_step: 30, steps: 6 });
        for bad in ["0:spike:1m:1m", "1:boom:1m:1m", "1:spike:1m", "1:spike:x:1m"] {
            assert!(parse_injection(bad, Duration::from_secs(1)).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_schedule_stays_in_bounds() {
        let s = random_schedule(5, 10_000, 100, 300, 30, 1);
        assert!(s.len() > 10);
        assert!(s.iter().all(|i| i.entity < 5 && i.start_step >= 100 && i.start_step + i.steps <= 10_000));
        assert_eq!(s, random_schedule(5, 10_000, 100, 300, 30, 1));
    }
}
