//! The quota preflight of a load into Harbor (issue 11): before a single blob is sent, the bytes
//! the load would newly store in each project are compared with the room that project's storage
//! quota leaves, so an operator learns at once which project is too small instead of after half
//! a bundle went up and Harbor refused the rest (`403 DENIED`, "will exceed the configured upper
//! limit"). Pure: the caller reads the quotas ([`super::harbor_projects`]) and counts the bytes.
//!
//! Harbor's rules, followed here: a hard limit of `-1` is unlimited; a project without a quota
//! record has no limit to check (Harbor only meters projects it made a quota for); a project that
//! will be created gets Harbor's `storage_per_project` default (`-1` out of the box).

use std::collections::BTreeMap;

/// Harbor's value for "no limit" (`types.UNLIMITED`).
pub const UNLIMITED: i64 = -1;

/// One project's storage quota as Harbor reports it (`Quota.hard.storage`, `Quota.used.storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StorageQuota {
    /// Bytes allowed; [`UNLIMITED`] (-1) for no limit.
    pub hard: i64,
    /// Bytes already stored.
    pub used: i64,
}

impl StorageQuota {
    /// A project about to be created: Harbor's default limit, nothing used yet.
    pub fn new_project(default_hard: i64) -> StorageQuota {
        StorageQuota {
            hard: default_hard,
            used: 0,
        }
    }

    /// Bytes that still fit, or `None` when unlimited (-1; Harbor refuses other negative limits,
    /// and a project already past its limit has no room).
    pub fn room(&self) -> Option<u64> {
        if self.hard == UNLIMITED {
            return None;
        }
        Some(self.hard.saturating_sub(self.used).max(0) as u64)
    }
}

/// A load that does not fit: the first project (by name) whose need exceeds its room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("project {project} needs {} more but has {} left of its {} quota; raise the quota in Harbor or load with --skip-quota-check", human(*need), human(*room), human(*hard))]
pub struct QuotaExceeded {
    pub project: String,
    /// Bytes the load would newly store there.
    pub need: u64,
    /// Bytes the quota still allows.
    pub room: u64,
    /// The quota's hard limit.
    pub hard: u64,
}

/// Checks every `(project, new bytes)` against `quotas`. A project missing from `quotas` has no
/// limit (no quota record); zero new bytes always fit. Projects are checked in name order so the
/// error names the same project on every run.
pub fn check(
    needs: &[(String, u64)],
    quotas: &BTreeMap<String, StorageQuota>,
) -> Result<(), QuotaExceeded> {
    let mut total: BTreeMap<&str, u64> = BTreeMap::new();
    for (project, bytes) in needs {
        let t = total.entry(project.as_str()).or_default();
        *t = t.saturating_add(*bytes);
    }
    for (project, need) in total {
        let Some(q) = quotas.get(project) else {
            continue;
        };
        let Some(room) = q.room() else { continue };
        if need > room {
            return Err(QuotaExceeded {
                project: project.to_string(),
                need,
                room,
                hard: q.hard.max(0) as u64,
            });
        }
    }
    Ok(())
}

/// `n` bytes for people, in binary units with one decimal where it matters: `300 MiB`,
/// `1.2 GiB`, `512 B`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn quotas(list: &[(&str, i64, i64)]) -> BTreeMap<String, StorageQuota> {
        list.iter()
            .map(|(p, hard, used)| {
                (
                    p.to_string(),
                    StorageQuota {
                        hard: *hard,
                        used: *used,
                    },
                )
            })
            .collect()
    }

    fn needs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(300 * MIB), "300 MiB");
        assert_eq!(human(2 * GIB), "2 GiB");
        assert_eq!(human(GIB + GIB / 5), "1.2 GiB");
        assert_eq!(human(u64::MAX), "16 EiB");
    }

    #[test]
    fn refusal_names_project_need_and_room() {
        let q = quotas(&[("app", 2 * GIB as i64, (2 * GIB - 300 * MIB) as i64)]);
        let err = check(&needs(&[("app", GIB + GIB / 5)]), &q).unwrap_err();
        assert_eq!(
            err.to_string(),
            "project app needs 1.2 GiB more but has 300 MiB left of its 2 GiB quota; raise the quota in Harbor or load with --skip-quota-check"
        );
        assert_eq!(err.room, 300 * MIB);
    }

    #[test]
    fn needs_of_one_project_add_up() {
        let q = quotas(&[("app", 1000, 0)]);
        assert!(check(&needs(&[("app", 600)]), &q).is_ok());
        let err = check(&needs(&[("app", 600), ("app", 401)]), &q).unwrap_err();
        assert_eq!((err.need, err.room), (1001, 1000));
        // Exactly full fits, as Harbor's `value > hardLimit` check allows.
        assert!(check(&needs(&[("app", 600), ("app", 400)]), &q).is_ok());
    }

    #[test]
    fn unlimited_missing_and_zero_pass() {
        let q = quotas(&[("free", UNLIMITED, 5 * GIB as i64), ("full", 10, 10)]);
        assert!(check(&needs(&[("free", u64::MAX)]), &q).is_ok());
        assert!(check(&needs(&[("unmetered", u64::MAX)]), &q).is_ok());
        assert!(check(&needs(&[("full", 0)]), &q).is_ok());
        assert!(check(&needs(&[("full", 1)]), &q).is_err());
    }

    #[test]
    fn over_used_quota_has_no_room() {
        // Harbor can end up past its limit (a limit lowered after the pushes).
        let q = quotas(&[("app", 100, 250)]);
        let err = check(&needs(&[("app", 1)]), &q).unwrap_err();
        assert_eq!((err.room, err.hard), (0, 100));
    }

    #[test]
    fn first_failing_project_by_name() {
        let q = quotas(&[("b", 10, 0), ("a", 10, 0), ("c", UNLIMITED, 0)]);
        let err = check(&needs(&[("c", 99), ("b", 11), ("a", 11)]), &q).unwrap_err();
        assert_eq!(err.project, "a");
    }

    #[test]
    fn new_projects_take_the_default() {
        let mut q = quotas(&[]);
        q.insert("new".into(), StorageQuota::new_project(UNLIMITED));
        assert!(check(&needs(&[("new", GIB)]), &q).is_ok());
        q.insert("new".into(), StorageQuota::new_project(MIB as i64));
        let err = check(&needs(&[("new", GIB)]), &q).unwrap_err();
        assert_eq!((err.room, err.hard), (MIB, MIB));
    }
}
