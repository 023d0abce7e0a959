//! How an object is cut into parts, and how long a failed part waits before its next attempt.

use std::time::Duration;

/// Attempts of one part, download or upload.
pub(super) const PART_ATTEMPTS: u32 = 4;

/// The smallest part worth a request of its own (aws-cli's default chunk size): below it the
/// per-request cost outweighs what one more parallel stream brings.
const MIN_PART: u64 = 8 << 20;

/// S3's limits on multipart uploads: parts of at least 5 MiB (but the last), at most 10,000 parts.
pub(super) const MIN_UPLOAD_PART: u64 = 5 << 20;
const MAX_UPLOAD_PARTS: u64 = 10_000;

/// The part size for `size` bytes: enough parts to keep `concurrency` streams busy, none larger
/// than `max_part` (`--part-size-mib`) and none smaller than [`MIN_PART`] (or `max_part`, when the
/// user asked for smaller parts). A whole number of MiB, so parts line up with page-cache pages.
pub(super) fn part_size_for(size: u64, concurrency: usize, max_part: u64) -> u64 {
    let even = size
        .div_ceil(concurrency.max(1) as u64)
        .next_multiple_of(1 << 20);
    even.clamp(MIN_PART.min(max_part), max_part)
}

/// [`part_size_for`] within S3's multipart limits.
pub(super) fn upload_part_size(size: u64, concurrency: usize, max_part: u64) -> u64 {
    part_size_for(size, concurrency, max_part.max(MIN_UPLOAD_PART))
        .max(size.div_ceil(MAX_UPLOAD_PARTS).next_multiple_of(1 << 20))
}

/// Waits before attempt `attempt` (1-based) of a part: 500 ms, 1 s, 2 s.
pub(super) async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn part_sizes_keep_streams_busy_within_bounds() {
        // Large objects: the --part-size-mib cap.
        assert_eq!(part_size_for(1024 * MIB, 8, 64 * MIB), 64 * MIB);
        // Mid-size objects: split across the streams, not fetched whole on one.
        assert_eq!(part_size_for(64 * MIB, 8, 64 * MIB), 8 * MIB);
        assert_eq!(part_size_for(100 * MIB, 8, 64 * MIB), 13 * MIB);
        // Small objects: one part of at least MIN_PART.
        assert_eq!(part_size_for(3 * MIB, 8, 64 * MIB), 8 * MIB);
        assert_eq!(part_size_for(0, 8, 64 * MIB), 8 * MIB);
        // A user asking for parts below MIN_PART gets them.
        assert_eq!(part_size_for(64 * MIB, 8, MIB), MIB);
        assert_eq!(part_size_for(64 * MIB, 1, 16 * MIB), 16 * MIB);
    }

    #[test]
    fn upload_parts_respect_s3_limits() {
        assert_eq!(upload_part_size(64 * MIB, 8, MIB), 5 * MIB);
        // 5 TiB, S3's largest object, in at most 10,000 parts.
        let size = 5 * 1024 * 1024 * MIB;
        let part = upload_part_size(size, 8, 64 * MIB);
        assert!(size.div_ceil(part) <= MAX_UPLOAD_PARTS, "{part}");
        assert_eq!(part % MIB, 0);
    }
}
