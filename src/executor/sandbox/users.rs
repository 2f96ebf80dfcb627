//! Users and groups as the image names them: `USER` and `COPY --chown` values resolved against
//! the text of the image's `/etc/passwd` and `/etc/group`, the way runc and BuildKit do.
//!
//! Layer of `sandbox/`, at the bottom with the path helpers: pure functions over the files'
//! text, no I/O (the callers read the files inside the image root).

use crate::executor::error::ExecError;

/// A passwd line: (name, uid, gid).
fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some((
            *f.first()?,
            f.get(2)?.parse().ok()?,
            f.get(3)?.parse().ok()?,
        ))
    })
}

/// A group line: (name, gid, members).
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

fn lookup_group(g: &str, group: Option<&str>) -> Result<u32, ExecError> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    group_entries(group.unwrap_or(""))
        .find(|(name, _, _)| *name == g)
        .map(|(_, gid, _)| gid)
        .ok_or_else(|| ExecError::UnknownUser {
            what: "group",
            name: g.to_string(),
            file: "group",
        })
}

/// Resolves a `USER` value the way runc's `user.GetExecUser` does: a name must exist in passwd; a
/// number need not (then gid 0); without an explicit group the primary group comes from passwd
/// and supplementary groups are those listing the user in /etc/group; with one, it is the only
/// group. Returns (uid, gid, supplementary groups).
pub(in crate::executor) fn resolve_run_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32, Vec<u32>), ExecError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<(&str, u32, u32)> = passwd_entries(passwd.unwrap_or("")).collect();
    let found = match user.parse::<u32>() {
        Ok(uid) => entries
            .iter()
            .find(|e| e.1 == uid)
            .copied()
            .or(Some(("", uid, 0))),
        Err(_) => entries.iter().find(|e| e.0 == user).copied(),
    };
    let (name, uid, primary) = found.ok_or_else(|| ExecError::UnknownUser {
        what: "user",
        name: user.to_string(),
        file: "passwd",
    })?;
    match grp {
        Some(g) if !g.is_empty() => {
            let gid = lookup_group(g, group)?;
            Ok((uid, gid, vec![gid]))
        }
        _ => {
            let mut groups = vec![primary];
            if !name.is_empty() {
                for (_, gid, members) in group_entries(group.unwrap_or("")) {
                    if members.contains(&name) && !groups.contains(&gid) {
                        groups.push(gid);
                    }
                }
            }
            Ok((uid, primary, groups))
        }
    }
}

/// Resolves `COPY --chown`: names through passwd/group, a missing group is the same number as
/// the user (Dockerfile reference, "COPY --chown").
pub(in crate::executor) fn resolve_chown(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), ExecError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => passwd_entries(passwd.unwrap_or(""))
            .find(|e| e.0 == user)
            .map(|e| e.1)
            .ok_or_else(|| ExecError::UnknownUser {
                what: "user",
                name: user.to_string(),
                file: "passwd",
            })?,
    };
    let gid = match grp {
        Some(g) if !g.is_empty() => lookup_group(g, group)?,
        _ => uid,
    };
    Ok((uid, gid))
}
