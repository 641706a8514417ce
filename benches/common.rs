//! What the benches share.

use connbal::capture::{Frame, Framer, RecordMeta, RunLimits};
use connbal::dissect::Dissector;
use connbal::event::EventBatch;
use connbal::pipeline::dissect_records;

/// Every record of a capture held in memory, framed as the reader frames
/// them (runs without a `Frame` per record, the framer's `next` for the
/// rest), into `metas` with data offsets from the start of `bytes`.
pub fn frame_all(bytes: &[u8], metas: &mut Vec<RecordMeta>) {
    let Ok((mut framer, mut pos)) = Framer::detect(bytes) else {
        panic!("not a capture")
    };
    metas.clear();
    let limits = RunLimits {
        max_bytes: usize::MAX,
        max_records: usize::MAX,
    };
    loop {
        pos = framer.run(bytes, pos, limits, metas);
        match framer.next(&bytes[pos..]) {
            Frame::Record(mut meta, len) => {
                meta.data_off += pos as u32;
                metas.push(meta);
                pos += len;
            }
            Frame::Skip(len) => pos += len,
            _ => return,
        }
    }
}

/// The records `metas` (framed from `bytes`) dissected as the parser
/// workers dissect them, into batches of `chunk` records.
pub fn dissect_all(
    dissector: &Dissector,
    bytes: &[u8],
    metas: &[RecordMeta],
    chunk: usize,
) -> Vec<EventBatch> {
    metas
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut batch = EventBatch {
                seq: i as u64,
                ..Default::default()
            };
            dissect_records(dissector, bytes, part, &mut batch);
            batch
        })
        .collect()
}
