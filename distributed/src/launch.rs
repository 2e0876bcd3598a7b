//! How a training process learns its place in a job: the same environment variables PyTorch
//! jobs use, so that torchrun, Slurm and hand-written launch scripts all work unchanged.

use std::fmt;

/// The port of the rendezvous store when nothing names one (PyTorch's default).
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// Who started the processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// `torchrun` (torch.distributed.run): its agent hosts the rendezvous store.
    Torchrun,
    /// Slurm's `srun`: one task per rank.
    Slurm,
    /// `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` set by hand or by another launcher
    /// (Kubernetes' PyTorchJob sets these too); rank 0 hosts the rendezvous store.
    Environment,
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launcher::Torchrun => "torchrun",
            Launcher::Slurm => "slurm",
            Launcher::Environment => "environment",
        })
    }
}

/// This process's place in a multi-process job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchEnv {
    pub launcher: Launcher,
    /// `0..world_size`; rank 0 validates, logs and writes checkpoints.
    pub rank: usize,
    pub world_size: usize,
    /// Rank among the processes of this machine: a CUDA rank uses `cuda:local_rank`.
    pub local_rank: usize,
    /// Host and port of the rendezvous store.
    pub master_addr: String,
    pub master_port: u16,
    /// The store is hosted by the launcher (torchrun's agent), not by rank 0.
    pub agent_store: bool,
    /// Restarts of the job so far (torchrun's `TORCHELASTIC_RESTART_COUNT`): keys of a
    /// restarted attempt must not meet the previous attempt's.
    pub attempt: u32,
}

/// An environment that names a job but not consistently.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    #[error("environment variable {name}={value:?}: {message}")]
    Invalid {
        name: &'static str,
        value: String,
        message: String,
    },
    #[error("environment variable {name} is not set; a {launcher} launch of {world_size} processes needs it")]
    Missing {
        name: &'static str,
        launcher: Launcher,
        world_size: usize,
    },
}

impl LaunchEnv {
    /// Reads the process environment. `Ok(None)` for a single-process run (no launcher
    /// variables, or a world of one).
    pub fn from_env() -> Result<Option<Self>, LaunchError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`LaunchEnv::from_env`], reading variables through `var`. `RANK`/`WORLD_SIZE` win
    /// over Slurm's variables, so that torchrun started inside an `srun` step works.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, LaunchError> {
        let number = |name: &'static str| -> Result<Option<usize>, LaunchError> {
            match var(name) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| LaunchError::Invalid {
                        name,
                        value: value.clone(),
                        message: "not a non-negative integer".into(),
                    }),
            }
        };
        let (launcher, rank, world_size, local_rank) =
            if let Some(world_size) = number("WORLD_SIZE")? {
                let launcher = if var("TORCHELASTIC_RUN_ID").is_some()
                    || var("TORCHELASTIC_USE_AGENT_STORE").is_some()
                {
                    Launcher::Torchrun
                } else {
                    Launcher::Environment
                };
                let rank = number("RANK")?.unwrap_or(0);
                let local_rank = number("LOCAL_RANK")?.unwrap_or(0);
                (launcher, rank, world_size, local_rank)
            } else if let Some(world_size) = number("SLURM_NTASKS")? {
                let rank = number("SLURM_PROCID")?.unwrap_or(0);
                let local_rank = number("SLURM_LOCALID")?.unwrap_or(0);
                (Launcher::Slurm, rank, world_size, local_rank)
            } else {
                return Ok(None);
            };
        if world_size == 0 {
            return Err(LaunchError::Invalid {
                name: if launcher == Launcher::Slurm {
                    "SLURM_NTASKS"
                } else {
                    "WORLD_SIZE"
                },
                value: "0".into(),
                message: "a job has at least one process".into(),
            });
        }
        if rank >= world_size {
            return Err(LaunchError::Invalid {
                name: if launcher == Launcher::Slurm {
                    "SLURM_PROCID"
                } else {
                    "RANK"
                },
                value: rank.to_string(),
                message: format!("ranks of a world of {world_size} are 0..{}", world_size - 1),
            });
        }
        if world_size == 1 {
            return Ok(None);
        }
        let missing = |name| LaunchError::Missing {
            name,
            launcher,
            world_size,
        };
        let master_addr = match (var("MASTER_ADDR"), launcher) {
            (Some(addr), _) if !addr.trim().is_empty() => addr.trim().to_owned(),
            (_, Launcher::Slurm) => {
                let list = var("SLURM_JOB_NODELIST")
                    .or_else(|| var("SLURM_NODELIST"))
                    .ok_or_else(|| missing("SLURM_JOB_NODELIST"))?;
                first_host(&list).ok_or_else(|| LaunchError::Invalid {
                    name: "SLURM_JOB_NODELIST",
                    value: list.clone(),
                    message: "no host name in this node list".into(),
                })?
            }
            _ => return Err(missing("MASTER_ADDR")),
        };
        let master_port = match var("MASTER_PORT") {
            Some(value) => value.trim().parse().map_err(|_| LaunchError::Invalid {
                name: "MASTER_PORT",
                value: value.clone(),
                message: "not a port number (1..65535)".into(),
            })?,
            // Two jobs sharing a first node must not meet on one port: derive it from the
            // job id, as PyTorch Lightning does.
            None if launcher == Launcher::Slurm => match number("SLURM_JOB_ID")? {
                Some(id) => 20000 + (id % 20000) as u16,
                None => DEFAULT_MASTER_PORT,
            },
            None => return Err(missing("MASTER_PORT")),
        };
        if master_port == 0 {
            return Err(LaunchError::Invalid {
                name: "MASTER_PORT",
                value: "0".into(),
                message: "not a port number (1..65535)".into(),
            });
        }
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True");
        let attempt = number("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u32;
        Ok(Some(Self {
            launcher,
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
            agent_store,
            attempt,
        }))
    }

    /// Whether this process hosts the rendezvous store (rank 0, unless the launcher does).
    pub fn hosts_store(&self) -> bool {
        !self.agent_store && self.rank == 0
    }
}

/// The first host of a Slurm node list in its compressed form: `gpu[07-09,12],cpu3` gives
/// `gpu07`, `node1,node2` gives `node1`.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    // The first entry ends at the first comma outside brackets.
    let mut depth = 0usize;
    let mut end = list.len();
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let entry = &list[..end];
    let host = match entry.find('[') {
        None => entry.to_owned(),
        Some(open) => {
            let close = entry[open..].find(']')? + open;
            let ranges = &entry[open + 1..close];
            let first = ranges.split(',').next()?.split('-').next()?;
            // Zero padding is part of the name (`gpu[07-09]` → `gpu07`).
            format!("{}{}{}", &entry[..open], first, &entry[close + 1..])
        }
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<LaunchEnv>, LaunchError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchEnv::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn no_launcher_is_a_single_process() {
        assert_eq!(env(&[]), Ok(None));
        assert_eq!(env(&[("WORLD_SIZE", "1"), ("RANK", "0")]), Ok(None));
        assert_eq!(
            env(&[("SLURM_NTASKS", "1"), ("SLURM_PROCID", "0")]),
            Ok(None)
        );
    }

    #[test]
    fn torchrun_uses_the_agent_store() {
        let e = env(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.2"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_RUN_ID", "none"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(e.launcher, Launcher::Torchrun);
        assert_eq!((e.rank, e.world_size, e.local_rank), (3, 4, 1));
        assert_eq!((e.master_addr.as_str(), e.master_port), ("10.0.0.2", 29400));
        assert!(e.agent_store && !e.hosts_store());
        assert_eq!(e.attempt, 2);
    }

    #[test]
    fn plain_variables_make_rank_0_the_store_host() {
        let e = env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "0"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29501"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(e.launcher, Launcher::Environment);
        assert!(e.hosts_store());
        let e1 = env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29501"),
        ])
        .unwrap()
        .unwrap();
        assert!(!e1.hosts_store());
    }

    #[test]
    fn slurm_takes_the_first_node_and_a_port_from_the_job_id() {
        let e = env(&[
            ("SLURM_NTASKS", "8"),
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[07-09,12],cpu3"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(e.launcher, Launcher::Slurm);
        assert_eq!((e.rank, e.world_size, e.local_rank), (5, 8, 1));
        assert_eq!(e.master_addr, "gpu07");
        assert_eq!(e.master_port, 20000 + (123456 % 20000) as u16);
        // MASTER_ADDR / MASTER_PORT win when the sbatch script sets them.
        let e = env(&[
            ("SLURM_NTASKS", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_JOB_NODELIST", "n1,n2"),
            ("MASTER_ADDR", "head"),
            ("MASTER_PORT", "31000"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.master_addr.as_str(), e.master_port), ("head", 31000));
    }

    #[test]
    fn node_lists() {
        assert_eq!(first_host("node1,node2").as_deref(), Some("node1"));
        assert_eq!(first_host("gpu[07-09]").as_deref(), Some("gpu07"));
        assert_eq!(first_host("a[3,5-6]-ib").as_deref(), Some("a3-ib"));
        assert_eq!(first_host("solo").as_deref(), Some("solo"));
        assert_eq!(first_host("").as_deref(), None);
        assert_eq!(first_host("x[1-2").as_deref(), None);
    }

    #[test]
    fn bad_environments_name_the_variable() {
        let err = env(&[("WORLD_SIZE", "two")]).unwrap_err();
        assert!(err.to_string().contains("WORLD_SIZE"), "{err}");
        let err = env(&[("WORLD_SIZE", "2"), ("RANK", "2")]).unwrap_err();
        assert!(
            err.to_string().contains("RANK") && err.to_string().contains("0..1"),
            "{err}"
        );
        let err = env(&[("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_PORT", "1")]).unwrap_err();
        assert!(err.to_string().contains("MASTER_ADDR"), "{err}");
        let err = env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "70000"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("MASTER_PORT"), "{err}");
        let err = env(&[("SLURM_NTASKS", "2"), ("SLURM_PROCID", "1")]).unwrap_err();
        assert!(err.to_string().contains("SLURM_JOB_NODELIST"), "{err}");
    }
}
