//! The JSON records the permessage-deflate benchmarks compress
//! (`bench-deflate` and the `deflate-idle` scenario): telemetry-like
//! objects of about 230 bytes from a fixed seed, so every run compresses
//! the same bytes.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

const NOTES: &[&str] = &[
    "all nominal",
    "valve check scheduled",
    "filter replaced",
    "sensor recalibrated after drift",
    "door opened",
    "battery low",
    "firmware 2.4.1 applied",
    "spike ignored",
    "maintenance window",
    "manual reading",
    "",
    "network jitter observed",
];
const SITES: &[&str] = &["plant-north", "plant-south", "warehouse-3", "lab-a", "roof"];
const STATUS: &[&str] = &["ok", "ok", "ok", "ok", "warn", "error"];

/// `n` JSON records: ids, timestamps, device ids, float readings and a
/// short note, like telemetry a long-lived connection streams.
pub fn records(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut ms: u64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z
    (0..n)
        .map(|i| {
            ms += 50 + rng.below(900);
            let (secs, milli) = (ms / 1000, ms % 1000);
            let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
            let day = 1 + (secs - 1_714_521_600) / 86_400;
            format!(
                concat!(
                    r#"{{"id":{},"ts":"2024-05-{:02}T{:02}:{:02}:{:02}.{:03}Z","device":"dev-{:05}","#,
                    r#""site":"{}","readings":{{"temp":{:.2},"humidity":{:.1},"pressure":{:.1},"#,
                    r#""pm25":{:.1},"voltage":{:.3}}},"status":"{}","seq":{},"note":"{}"}}"#
                ),
                1_000_000 + i,
                day,
                h,
                m,
                s,
                milli,
                rng.below(2_000),
                SITES[rng.below(SITES.len() as u64) as usize],
                rng.float(-10.0, 40.0),
                rng.float(10.0, 95.0),
                rng.float(960.0, 1040.0),
                rng.float(0.0, 150.0),
                rng.float(3.0, 4.2),
                STATUS[rng.below(STATUS.len() as u64) as usize],
                rng.below(1 << 20),
                NOTES[rng.below(NOTES.len() as u64) as usize],
            )
        })
        .collect()
}
