//! `bench-micro [--json] [--quick]`: tether-core's per-byte primitives
//! next to a plain memcpy of the same bytes, so their cost reads as a
//! fraction of the cheapest thing a WebSocket can do with a payload.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tether::core::frame::FrameHeader;
use tether::core::mask::apply_mask;
use tether::core::utf8::Utf8Validator;
use tether_bench::args::Args;
use tether_bench::record::Record;

const USAGE: &str = "usage: bench-micro [--records] [--quick]\n  --records  key=value records for bench-suite instead of a table";
const SIZES: [usize; 4] = [64, 1 << 10, 64 << 10, 1 << 20];

fn main() {
    let a = Args::parse(USAGE, &["records", "quick"]);
    let budget = if a.switch("quick") {
        Duration::from_millis(10)
    } else {
        Duration::from_millis(100)
    };
    let rows: Vec<Record> = SIZES.iter().map(|&size| measure(size, budget)).collect();
    if a.switch("records") {
        for r in &rows {
            println!("{}", r.to_lines());
        }
    } else {
        print!("{}", tether_bench::suite::report::micro_table(&rows));
    }
}

fn measure(size: usize, budget: Duration) -> Record {
    let text = tether_bench::wire::json_text(size);
    let mut dst_buf = vec![0u8; size + 4096];
    // Keep source and destination 2 KiB apart modulo 4 KiB: back-to-back
    // heap blocks alias in the 4 KiB page offset, and `rep movsb` on some
    // x86 cores then runs ten times slower, which says nothing about copying.
    let skew = (2048 + text.as_ptr() as usize - dst_buf.as_ptr() as usize) & 4095;
    let dst = &mut dst_buf[skew..skew + size];
    let mut buf = text.clone();
    let header = masked_header(size);

    let memcpy = ns_per_iter(budget, || {
        dst.copy_from_slice(black_box(&text));
        black_box(&mut *dst);
    });
    let mask = ns_per_iter(budget, || {
        black_box(apply_mask(black_box(&mut buf), [1, 2, 3, 4], 0));
    });
    let validator = ns_per_iter(budget, || {
        let mut v = Utf8Validator::new();
        black_box(v.feed(black_box(&text)).is_ok() && v.is_complete());
    });
    let simd = ns_per_iter(budget, || {
        black_box(simdutf8::basic::from_utf8(black_box(&text)).is_ok());
    });
    let std_utf8 = ns_per_iter(budget, || {
        black_box(std::str::from_utf8(black_box(&text)).is_ok());
    });
    // One mask key per client frame: the adapters' CSPRNG next to the
    // linear generator it replaced, and a whole masked frame (key, then
    // apply_mask over the payload) with the CSPRNG.
    let mut csprng = tether::os_rng();
    let mut xoshiro = tether::core::Xoshiro256::from_seed(1);
    let key_csprng = ns_per_iter(budget, || {
        black_box(csprng.next_u32());
    });
    let key_xoshiro = ns_per_iter(budget, || {
        black_box(tether::core::RandomSource::next_u32(&mut xoshiro));
    });
    let masked_frame = ns_per_iter(budget, || {
        let key = csprng.next_u32().to_ne_bytes();
        black_box(apply_mask(black_box(&mut buf), key, 0));
    });
    let decode = ns_per_iter(budget, || {
        black_box(FrameHeader::decode(black_box(&header)).ok());
    });
    let gbps = |ns: f64| size as f64 / ns;
    Record::new()
        .num("size", size as f64)
        .num("memcpy_gbps", gbps(memcpy))
        .num("apply_mask_gbps", gbps(mask))
        .num("utf8_validator_gbps", gbps(validator))
        .num("simdutf8_gbps", gbps(simd))
        .num("std_utf8_gbps", gbps(std_utf8))
        .num("header_decode_ns", decode)
        .num("mask_key_csprng_ns", key_csprng)
        .num("mask_key_xoshiro_ns", key_xoshiro)
        .num("masked_frame_ns", masked_frame)
}

/// The header of a masked client frame carrying `size` bytes.
fn masked_header(size: usize) -> Vec<u8> {
    let mut header = [0u8; tether::core::frame::MAX_HEADER_LEN];
    let h = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: 2,
        mask: Some([1, 2, 3, 4]),
        payload_len: size as u64,
    };
    let n = h.encode(&mut header);
    header[..n].to_vec()
}

/// Nanoseconds per call of `f`: the fastest of five samples that together
/// take about `budget`. The fastest, not the median, because other
/// processes on the core only ever add time.
fn ns_per_iter(budget: Duration, mut f: impl FnMut()) -> f64 {
    let sample = budget / 5;
    let mut iters: u64 = 1;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() >= sample / 4 {
            break;
        }
        iters *= 2;
    }
    iters *= 4;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}
