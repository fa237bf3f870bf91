//! The process's CPU clock: user + system time of all its threads (live and
//! exited), from `/proc/self/stat`, for CPU-per-request figures. Linux only.

use std::time::Duration;

/// utime + stime, in clock ticks, from the text of a `/proc/PID/stat` file.
///
/// The command name (field 2) is in parentheses and may hold spaces or `)`, so the
/// fields are counted from the last `)`.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    // After "pid (comm)" come field 3 (state) onwards; utime and stime are 14 and 15.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of `/proc` times. Linux has reported 100 (`USER_HZ`) on
/// every architecture for decades; `getconf CLK_TCK` says so.
pub const CLK_TCK: u32 = 100;

/// CPU time this process has used so far.
///
/// # Errors
/// When `/proc/self/stat` cannot be read or parsed.
pub fn process_cpu() -> Result<Duration, String> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    let ticks = stat_ticks(&stat).ok_or("/proc/self/stat: unexpected format")?;
    Ok(Duration::from_millis(ticks * 1000 / u64::from(CLK_TCK)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    150 25 0 0 20 0 3 0 12345 1000000 500 18446744073709551615";
        assert_eq!(stat_ticks(stat), Some(175));
    }

    #[test]
    fn truncated_stat_is_none() {
        assert_eq!(stat_ticks("1 (x) S 1 2 3"), None);
    }

    #[test]
    fn own_cpu_clock_reads() {
        assert!(process_cpu().is_ok());
    }
}
