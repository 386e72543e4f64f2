// SPDX-License-Identifier: MIT OR Apache-2.0
//! `PortCreate`, `PortSend`, `PortCall`, `PortReceive`, `PortReply` over
//! [`crate::port::PortHandle`].

use alloc::sync::Arc;

use abi::Errno;

use super::{copy_in, copy_out};
use crate::{
    decode::{Fd, UserBuf},
    files::Descriptor,
    port::{PortHandle, port_create},
    process::Process,
};

fn handle(proc: &Process, fd: Fd) -> Result<Arc<PortHandle>, Errno> {
    match proc.descriptor(fd.0)? {
        Descriptor::Port(p) => Ok(p),
        _ => Err(Errno::BadF),
    }
}

pub(crate) fn create(proc: &Process) -> Result<i64, Errno> {
    let fd = proc
        .files
        .lock()
        .insert(Descriptor::Port(port_create()), false)?;
    Ok(fd as i64)
}

pub(crate) fn send(proc: &Process, fd: Fd, msg: UserBuf) -> Result<i64, Errno> {
    let port = handle(proc, fd)?;
    port.send(copy_in(&*proc.memory, msg)?)?;
    Ok(0)
}

pub(crate) async fn call(
    proc: &Process,
    fd: Fd,
    msg: UserBuf,
    reply: UserBuf,
) -> Result<i64, Errno> {
    let port = handle(proc, fd)?;
    let data = copy_in(&*proc.memory, msg)?;
    let answer = port.call(data).await?;
    copy_out(&*proc.memory, reply, &answer)?;
    Ok(answer.len() as i64)
}

pub(crate) async fn receive(
    proc: &Process,
    fd: Fd,
    buf: UserBuf,
    token_out: UserBuf,
) -> Result<i64, Errno> {
    let port = handle(proc, fd)?;
    let m = port.receive(buf.len).await?;
    copy_out(&*proc.memory, buf, &m.data)?;
    copy_out(&*proc.memory, token_out, &m.token.to_le_bytes())?;
    Ok(m.data.len() as i64)
}

pub(crate) fn reply(proc: &Process, fd: Fd, token: u64, msg: UserBuf) -> Result<i64, Errno> {
    let port = handle(proc, fd)?;
    port.reply(token, copy_in(&*proc.memory, msg)?)?;
    Ok(0)
}
