//! Which jobs of a batch this process runs: `--shard I/N` as given,
//! `--shard auto` from the scheduler's environment, `--shard none` for all.
//! Without `--shard`, the environment decides when it names an array task
//! (Slurm) or an Indexed Job pod (Kubernetes), else the process runs all.
//!
//! - Slurm job arrays set `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`,
//!   `SLURM_ARRAY_TASK_MAX`, `SLURM_ARRAY_TASK_STEP` and
//!   `SLURM_ARRAY_TASK_COUNT`: `--array=1-8` gives shards 0/8 … 7/8,
//!   `--array=0-15:4` gives 0/4 … 3/4. An array that is not one regular range
//!   (`--array=1,5,9-10`) has no such numbering: it is refused, naming
//!   `--shard I/N` as the way out.
//! - A Kubernetes Indexed Job sets `JOB_COMPLETION_INDEX` (0-based) but not
//!   the number of completions: `--shard-count N` gives it.
//!
//! Pure functions over an environment lookup, so the rules are unit tested
//! without touching the process environment.

use super::plan::Shard;
use neural_style_core::{Error, Result};

/// The `--shard` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShardArg {
    /// `--shard auto`: from the environment, an error when it names none.
    Auto,
    /// `--shard none`: every job, whatever the environment says.
    All,
    /// `--shard I/N`.
    Fixed(Shard),
}

impl std::str::FromStr for ShardArg {
    type Err = Error;
    fn from_str(s: &str) -> Result<ShardArg> {
        match s.trim() {
            "auto" => Ok(ShardArg::Auto),
            "none" | "all" => Ok(ShardArg::All),
            _ => s.parse().map(ShardArg::Fixed),
        }
    }
}

/// The shard chosen, and a line saying where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// The shard to run (`None`: every job).
    pub(crate) shard: Option<Shard>,
    /// Where it came from, for the log.
    pub(crate) from: String,
}

const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";

/// Decide the shard from the flags (`--shard`, `--shard-count`) and the
/// environment (`env(name)` is the variable's value, if set).
pub(crate) fn choose(
    arg: Option<ShardArg>,
    count: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Chosen> {
    if count == Some(0) {
        return Err(Error::config("shard-count", "must be at least 1"));
    }
    match arg {
        Some(ShardArg::Fixed(s)) => {
            if count.is_some_and(|n| n != s.count) {
                return Err(Error::config(
                    "shard-count",
                    format!(
                        "{} conflicts with `shard` {}/{}",
                        count.unwrap_or(0),
                        s.index,
                        s.count
                    ),
                ));
            }
            Ok(Chosen {
                shard: Some(s),
                from: format!("shard {}/{} (`shard`)", s.index, s.count),
            })
        }
        Some(ShardArg::All) => Ok(Chosen {
            shard: None,
            from: "all jobs (`shard` none)".into(),
        }),
        Some(ShardArg::Auto) | None => {
            if env(SLURM_ID).is_some() {
                return slurm(count, env);
            }
            if env(K8S_INDEX).is_some() {
                return kubernetes(count, env);
            }
            if arg == Some(ShardArg::Auto) {
                return Err(Error::config(
                    "shard",
                    format!(
                        "auto: neither {SLURM_ID} (a Slurm job array task) nor {K8S_INDEX} \
                         (a Kubernetes Indexed Job) is set; give `shard` I/N"
                    ),
                ));
            }
            if count.is_some() {
                return Err(Error::config(
                    "shard-count",
                    format!("is the number of completions of a Kubernetes Indexed Job, but {K8S_INDEX} is not set"),
                ));
            }
            Ok(Chosen {
                shard: None,
                from: "all jobs".into(),
            })
        }
    }
}

/// A whole number from the environment, or an error naming the variable.
fn number(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<i64>> {
    env(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| Error::config("shard", format!("{name}={v:?} is not a whole number")))
        })
        .transpose()
}

fn slurm(count_flag: Option<usize>, env: &dyn Fn(&str) -> Option<String>) -> Result<Chosen> {
    let id = number(env, SLURM_ID)?.expect("checked by the caller");
    let Some(count) = number(env, "SLURM_ARRAY_TASK_COUNT")? else {
        return Err(Error::config(
            "shard",
            format!("{SLURM_ID} is set but SLURM_ARRAY_TASK_COUNT is not; give `shard` I/N"),
        ));
    };
    let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
    let max = number(env, "SLURM_ARRAY_TASK_MAX")?;
    let irregular = || {
        Error::config(
            "shard",
            format!(
                "the Slurm array is not one regular range ({SLURM_ID}={id}, MIN={min}, \
                 MAX={}, STEP={step}, COUNT={count}): give `shard` I/N",
                max.map_or("unset".into(), |m| m.to_string())
            ),
        )
    };
    // Checked: garbage values are refused, never wrapped.
    let offset = id.checked_sub(min);
    if count < 1 || step < 1 || id < min || offset.is_none_or(|o| o % step != 0) {
        return Err(irregular());
    }
    let last = (count - 1)
        .checked_mul(step)
        .and_then(|span| min.checked_add(span));
    if last.is_none() || max.is_some_and(|m| Some(m) != last) {
        return Err(irregular());
    }
    let index = offset.unwrap_or(0) / step;
    if index >= count || usize::try_from(count).is_err() {
        return Err(irregular());
    }
    if let Some(n) = count_flag.filter(|&n| n as i64 != count) {
        return Err(Error::config(
            "shard-count",
            format!("{n} conflicts with SLURM_ARRAY_TASK_COUNT={count}"),
        ));
    }
    let shard = Shard {
        index: index as usize,
        count: count as usize,
    };
    Ok(Chosen {
        shard: Some(shard),
        from: format!(
            "shard {}/{} from Slurm ({SLURM_ID}={id}, SLURM_ARRAY_TASK_MIN={min}, \
             SLURM_ARRAY_TASK_STEP={step}, SLURM_ARRAY_TASK_COUNT={count})",
            shard.index, shard.count
        ),
    })
}

fn kubernetes(count: Option<usize>, env: &dyn Fn(&str) -> Option<String>) -> Result<Chosen> {
    let index = number(env, K8S_INDEX)?.expect("checked by the caller");
    let Some(count) = count else {
        return Err(Error::config(
            "shard",
            format!(
                "{K8S_INDEX}={index} (a Kubernetes Indexed Job) but the number of completions \
                 is unknown: add `shard-count` N (the Job's `completions`)"
            ),
        ));
    };
    if index < 0 || index as usize >= count {
        return Err(Error::config(
            "shard-count",
            format!("{K8S_INDEX}={index} is not below `shard-count` {count}"),
        ));
    }
    let shard = Shard {
        index: index as usize,
        count,
    };
    Ok(Chosen {
        shard: Some(shard),
        from: format!(
            "shard {index}/{count} from Kubernetes ({K8S_INDEX}={index}, `shard-count` {count})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn slurm_env(id: &str, min: &str, max: &str, step: &str, count: &str) -> Vec<(String, String)> {
        [
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", min),
            ("SLURM_ARRAY_TASK_MAX", max),
            ("SLURM_ARRAY_TASK_STEP", step),
            ("SLURM_ARRAY_TASK_COUNT", count),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn shard_of(pairs: &[(String, String)], arg: Option<ShardArg>) -> Result<Chosen> {
        let p: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        choose(arg, None, &env(&p))
    }

    fn s(index: usize, count: usize) -> Option<Shard> {
        Some(Shard { index, count })
    }

    #[test]
    fn flag_parsing() {
        assert_eq!("auto".parse::<ShardArg>().unwrap(), ShardArg::Auto);
        assert_eq!("none".parse::<ShardArg>().unwrap(), ShardArg::All);
        assert_eq!(
            "1/4".parse::<ShardArg>().unwrap(),
            ShardArg::Fixed(Shard { index: 1, count: 4 })
        );
        assert!("4/4".parse::<ShardArg>().is_err());
    }

    #[test]
    fn slurm_arrays_map_to_zero_based_shards() {
        // --array=0-3
        let c = shard_of(&slurm_env("2", "0", "3", "1", "4"), None).unwrap();
        assert_eq!(c.shard, s(2, 4));
        assert!(c.from.contains("Slurm") && c.from.contains("SLURM_ARRAY_TASK_ID=2"));
        // --array=1-8: task 1 is shard 0.
        let c = shard_of(&slurm_env("1", "1", "8", "1", "8"), Some(ShardArg::Auto)).unwrap();
        assert_eq!(c.shard, s(0, 8));
        let c = shard_of(&slurm_env("8", "1", "8", "1", "8"), None).unwrap();
        assert_eq!(c.shard, s(7, 8));
        // --array=0-15:4 → ids 0, 4, 8, 12.
        let c = shard_of(&slurm_env("12", "0", "12", "4", "4"), None).unwrap();
        assert_eq!(c.shard, s(3, 4));
        // Without MAX/STEP (older Slurm): MIN and COUNT suffice.
        let c = shard_of(
            &[
                ("SLURM_ARRAY_TASK_ID".into(), "5".into()),
                ("SLURM_ARRAY_TASK_MIN".into(), "3".into()),
                ("SLURM_ARRAY_TASK_COUNT".into(), "4".into()),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.shard, s(2, 4));
    }

    #[test]
    fn irregular_or_incomplete_slurm_arrays_are_refused() {
        // --array=1,5,9-10: COUNT 4, MIN 1, MAX 10: not one range.
        let e = shard_of(&slurm_env("5", "1", "10", "1", "4"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not one regular range") && e.contains("`shard` I/N"),
            "{e}"
        );
        let e = shard_of(&slurm_env("3", "0", "12", "4", "4"), None).unwrap_err();
        assert!(e.to_string().contains("regular range"), "{e}");
        let e = shard_of(&slurm_env("x", "0", "3", "1", "4"), None).unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID=\"x\""), "{e}");
        let e = shard_of(&[("SLURM_ARRAY_TASK_ID".into(), "1".into())], None).unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
        // --shard-count must agree with Slurm's count.
        let p = slurm_env("1", "0", "3", "1", "4");
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert!(choose(None, Some(3), &env(&p)).is_err());
        assert_eq!(choose(None, Some(4), &env(&p)).unwrap().shard, s(1, 4));
    }

    #[test]
    fn garbage_slurm_values_are_refused_naming_the_variable_never_wrapped() {
        let big = i64::MAX.to_string();
        let small = i64::MIN.to_string();
        // Each of these wrapped (or overflowed) before: 0 jobs, exit 0.
        for env in [
            slurm_env(&big, &small, "3", "1", "4"),
            slurm_env("1", "0", &big, &big, "4"),
            slurm_env("0", &big, &big, "1", &big),
            slurm_env(&big, "0", &big, "1", &big),
            slurm_env("3", "0", "3", "1", "-4"),
        ] {
            let e = shard_of(&env, None).unwrap_err().to_string();
            assert!(e.contains("SLURM_ARRAY_TASK_ID="), "{e}");
        }
        let e = shard_of(&slurm_env("1", "0", "3", "1", "99999999999999999999"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SLURM_ARRAY_TASK_COUNT=\"99999999999999999999\""),
            "{e}"
        );
        let e = choose(None, Some(2), &env(&[("JOB_COMPLETION_INDEX", &small)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX="), "{e}");
    }

    #[test]
    fn kubernetes_needs_the_count_by_flag() {
        let e = env(&[("JOB_COMPLETION_INDEX", "3")]);
        let c = choose(None, Some(8), &e).unwrap();
        assert_eq!(c.shard, s(3, 8));
        assert!(c.from.contains("Kubernetes"), "{}", c.from);
        assert_eq!(
            choose(Some(ShardArg::Auto), Some(8), &e).unwrap().shard,
            s(3, 8)
        );
        let m = choose(None, None, &e).unwrap_err().to_string();
        assert!(m.contains("`shard-count` N"), "{m}");
        assert!(choose(None, Some(3), &e).is_err()); // index 3 of 3
        assert!(choose(None, Some(0), &e).is_err());
        // Slurm wins when both are set (an Indexed Job inside an allocation is not a thing,
        // but the order must be fixed).
        let both = env(&[
            ("JOB_COMPLETION_INDEX", "0"),
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]);
        assert_eq!(choose(None, None, &both).unwrap().shard, s(1, 2));
    }

    #[test]
    fn flags_override_the_environment_and_nothing_means_all() {
        let p = slurm_env("2", "0", "3", "1", "4");
        let fixed = ShardArg::Fixed(Shard { index: 0, count: 2 });
        assert_eq!(shard_of(&p, Some(fixed)).unwrap().shard, s(0, 2));
        let all = shard_of(&p, Some(ShardArg::All)).unwrap();
        assert_eq!(all.shard, None);
        assert!(all.from.contains("`shard` none"));
        let none = env(&[]);
        assert_eq!(choose(None, None, &none).unwrap().shard, None);
        let e = choose(Some(ShardArg::Auto), None, &none).unwrap_err();
        assert!(e.to_string().contains("neither SLURM_ARRAY_TASK_ID"), "{e}");
        assert!(choose(None, Some(4), &none).is_err());
        assert!(choose(Some(fixed), Some(3), &none).is_err());
    }
}
