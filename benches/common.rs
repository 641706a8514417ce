//! What the benches share.

use connbal::capture::RecordMeta;
use connbal::dissect::Dissector;
use connbal::event::EventBatch;
use connbal::pipeline::dissect_records;

/// [`connbal::capture::frame_all`], for a capture known to be one.
pub fn frame_all(bytes: &[u8], metas: &mut Vec<RecordMeta>) {
    assert!(connbal::capture::frame_all(bytes, metas), "not a capture");
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
            // Where the batch ends in the capture, as the reader tells.
            let end_offset = part.last().map_or(0, RecordMeta::end);
            let mut batch = EventBatch {
                seq: i as u64,
                end_offset,
                ..Default::default()
            };
            dissect_records(dissector, bytes, part, &mut batch);
            batch
        })
        .collect()
}
