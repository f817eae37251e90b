//! The end of a restore: symlinks, then directories' metadata, deepest
//! first (writing inside a directory changes its times).

use super::*;

/// The end of a restore: symlinks, then the metadata of symlinks (on every
/// core; hard links share their first's inode, finished with it), then of
/// directories, deepest first (writing into a directory changes its mtime;
/// reversed pre-order puts every child before its parent).
pub(super) fn finish_links_and_dirs(
    dest: &Destination<'_>,
    carried: Carried,
    summary: &mut RestoreSummary,
) {
    let (target, opts, fresh) = (dest.target, dest.opts, dest.fresh);
    let mut made = vec![];
    for e in carried.symlinks {
        let p = target.join(&e.rel);
        let link_to = e
            .node
            .link_target
            .as_ref()
            .map(|t| t.as_os_str())
            .unwrap_or_default();
        let r = remove_existing(&p, fresh, opts.overwrite)
            .and_then(|()| std::os::unix::fs::symlink(link_to, &p));
        match r {
            Ok(()) => {
                summary.symlinks += 1;
                made.push(e);
            }
            Err(err) => summary.problems.push(RestoreProblem {
                path: e.rel,
                message: err.to_string(),
            }),
        }
    }
    for e in carried.specials {
        let p = target.join(&e.rel);
        match remove_existing(&p, fresh, opts.overwrite).and_then(|()| make_special(&p, &e.node)) {
            Ok(()) => {
                summary.specials += 1;
                made.push(e);
            }
            Err(err) => summary.problems.push(RestoreProblem {
                path: e.rel,
                message: err.to_string(),
            }),
        }
    }
    let link_results = par_map(&made, |e| {
        metadata::apply(At::Path(&target.join(&e.rel)), &e.node)
    });
    let dir_results: Vec<_> = carried
        .dirs
        .iter()
        .rev()
        .map(|e| metadata::apply(At::Path(&target.join(&e.rel)), &e.node))
        .collect();
    let all = made.iter().zip(link_results);
    for (e, r) in all.chain(carried.dirs.iter().rev().zip(dir_results)) {
        if let Err(err) = r {
            summary.problems.push(RestoreProblem {
                path: e.rel.clone(),
                message: format!("metadata: {err}"),
            });
        }
    }
}
