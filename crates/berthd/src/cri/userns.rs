//! `NamespaceOption.userns_options` as berth takes it: the node's user namespace, or one of the
//! pod's with exactly one range of user IDs and one of group IDs that maps the container's root.

use berth_cri::v1 as cri;
use tonic::Status;

use crate::userns::{IdMap, IdMappings};

/// None: the node's user namespace (no options, or NODE); else the pod's mappings.
pub fn user_namespace(options: Option<&cri::UserNamespace>) -> Result<Option<IdMappings>, Status> {
    let Some(options) = options else {
        return Ok(None);
    };
    match cri::NamespaceMode::try_from(options.mode) {
        Ok(cri::NamespaceMode::Node) => Ok(None),
        Ok(cri::NamespaceMode::Pod) => {
            mappings(&options.uids, &options.gids, "userns_options").map(Some)
        }
        Ok(mode) => Err(Status::invalid_argument(format!(
            "userns_options mode {} is not supported: a user namespace is the node's or the pod's",
            mode.as_str_name()
        ))),
        Err(_) => Err(Status::invalid_argument(format!(
            "userns_options mode {} is unknown",
            options.mode
        ))),
    }
}

/// The user and group ranges of `owner` (a message's field, for errors).
pub fn mappings(
    uids: &[cri::IdMapping],
    gids: &[cri::IdMapping],
    owner: &str,
) -> Result<IdMappings, Status> {
    Ok(IdMappings {
        uids: one_range(uids, &format!("{owner}.uids"))?,
        gids: one_range(gids, &format!("{owner}.gids"))?,
    })
}

fn one_range(ranges: &[cri::IdMapping], field: &str) -> Result<IdMap, Status> {
    let [range] = ranges else {
        return Err(Status::invalid_argument(format!(
            "{field}: exactly one mapping is supported, not {}",
            ranges.len()
        )));
    };
    if range.container_id != 0 {
        return Err(Status::invalid_argument(format!(
            "{field}: the container's ID 0 must be mapped, the mapping starts at {}",
            range.container_id
        )));
    }
    if range.length == 0 || range.host_id.checked_add(range.length - 1).is_none() {
        return Err(Status::invalid_argument(format!(
            "{field}: {} IDs from host ID {} do not fit",
            range.length, range.host_id
        )));
    }
    Ok(IdMap {
        container_id: range.container_id,
        host_id: range.host_id,
        length: range.length,
    })
}

/// The options PodSandboxStatus reports for a pod's user namespace.
pub fn user_namespace_to_cri(mappings: Option<&IdMappings>) -> cri::UserNamespace {
    let range = |m: &IdMap| {
        vec![cri::IdMapping {
            container_id: m.container_id,
            host_id: m.host_id,
            length: m.length,
        }]
    };
    match mappings {
        None => cri::UserNamespace {
            mode: cri::NamespaceMode::Node as i32,
            ..cri::UserNamespace::default()
        },
        Some(m) => cri::UserNamespace {
            mode: cri::NamespaceMode::Pod as i32,
            uids: range(&m.uids),
            gids: range(&m.gids),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(mode: cri::NamespaceMode, ranges: &[(u32, u32, u32)]) -> cri::UserNamespace {
        let ranges: Vec<cri::IdMapping> = ranges
            .iter()
            .map(|&(container_id, host_id, length)| cri::IdMapping {
                container_id,
                host_id,
                length,
            })
            .collect();
        cri::UserNamespace {
            mode: mode as i32,
            uids: ranges.clone(),
            gids: ranges,
        }
    }

    #[test]
    fn one_range_from_zero_or_the_nodes() {
        use cri::NamespaceMode as M;
        assert_eq!(user_namespace(None).unwrap(), None);
        assert_eq!(user_namespace(Some(&options(M::Node, &[]))).unwrap(), None);
        let pod = user_namespace(Some(&options(M::Pod, &[(0, 1000, 100_000)])))
            .unwrap()
            .unwrap();
        assert_eq!(pod.host_root(), (1000, 1000));
        for bad in [
            options(M::Pod, &[(0, 1000, 100_000), (0, 2000, 100_000)]),
            options(M::Pod, &[(1, 1000, 100_000)]),
            options(M::Pod, &[]),
            options(M::Pod, &[(0, u32::MAX, 2)]),
            options(M::Container, &[]),
            options(M::Target, &[]),
        ] {
            let err = user_namespace(Some(&bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }
}
