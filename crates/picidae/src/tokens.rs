//! `picidae token`: create, list and revoke the API's tokens (read-write, read-only, a
//! worker's or a contributor's).

use anyhow::Result;
use picidae_sched::Project;

use crate::cli::TokenCmd;

pub(crate) fn run(project: &mut Project, cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create {
            name,
            read_only,
            worker,
            contributor,
        } => {
            let (t, secret) = if worker {
                project.store.create_worker_token(&name)?
            } else if contributor {
                project.store.create_contributor_token(&name)?
            } else {
                project.store.create_token(&name, read_only)?
            };
            println!("token {} ({}, {})", t.id, t.name, kind(&t));
            println!("{secret}");
            eprintln!("keep the secret: it is not stored and cannot be shown again");
        }
        TokenCmd::List => {
            for t in project.store.tokens()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    t.id,
                    t.name,
                    kind(&t),
                    if t.revoked { "revoked" } else { "active" }
                );
            }
        }
        TokenCmd::Revoke { id } => {
            project.store.revoke_token(id)?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

fn kind(t: &picidae_store::Token) -> &'static str {
    if t.worker {
        "worker"
    } else if t.contributor {
        "contributor"
    } else if t.read_only {
        "read-only"
    } else {
        "read-write"
    }
}
