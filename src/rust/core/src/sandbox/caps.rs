//! Drops every capability: R needs none, whether it runs as root of its
//! user namespace or (fallback tier) as the host's root.

use crate::policy::{LaunchFailure, Layer, LayerState};
use crate::sys;

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> Result<[CapData; 2], i32> {
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as capget(2) wants for
    // version 3.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(sys::errno());
    }
    Ok(data)
}

pub(crate) fn drop_all(strict: bool) -> Result<LayerState, LaunchFailure> {
    // no_new_privs first: execve can then never add privileges back
    // (set-uid bits, file capabilities, root's implicit capabilities).
    if let Err(e) = sys::set_no_new_privs() {
        return Err(LaunchFailure::os(
            Layer::Capabilities,
            "PR_SET_NO_NEW_PRIVS",
            e,
        ));
    }
    // SAFETY: prctl with integer arguments only; EINVAL on old kernels.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let had = capget().map_err(|e| LaunchFailure::os(Layer::Capabilities, "capget", e))?;
    let held_any = had.iter().any(|d| d.effective | d.permitted != 0);

    // The bounding set needs CAP_SETPCAP; without it nothing is held anyway.
    let mut bounding_kept = 0;
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if present < 0 {
            break;
        }
        if present == 1 {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                bounding_kept += 1;
            }
        }
    }

    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as capset(2) wants for
    // version 3; all sets are emptied.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        let f = LaunchFailure::os(Layer::Capabilities, "capset", sys::errno());
        if strict || held_any {
            return Err(f);
        }
        return Ok(LayerState::new(Layer::Capabilities, false, f.message));
    }
    let now = capget().map_err(|e| LaunchFailure::os(Layer::Capabilities, "capget", e))?;
    if now
        .iter()
        .any(|d| d.effective | d.permitted | d.inheritable != 0)
    {
        return Err(LaunchFailure::new(
            Layer::Capabilities,
            "capabilities still held after capset",
            None,
        ));
    }
    let mut detail = String::from(if held_any {
        "all dropped (effective, permitted, inheritable, ambient)"
    } else {
        "none held"
    });
    if bounding_kept == 0 {
        detail.push_str("; bounding set emptied");
    } else {
        detail.push_str("; bounding set kept (no CAP_SETPCAP)");
    }
    detail.push_str("; no_new_privs set");
    Ok(LayerState::new(Layer::Capabilities, true, detail))
}
