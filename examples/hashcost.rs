use connbal::addr::Addr;
use connbal::table;
fn main() {
    let addrs: Vec<(Addr, Addr)> = (0..4096u32)
        .map(|i| {
            (
                Addr::V4(i.wrapping_mul(2654435761).to_be_bytes()),
                Addr::V4([10, 0, 0, (i & 255) as u8]),
            )
        })
        .collect();
    let mut acc = 0u64;
    for i in 0..1_000_000usize {
        let (a, b) = &addrs[i & 4095];
        acc = acc.wrapping_add(table::pair_hash(a, b));
    }
    println!("{acc}");
}
