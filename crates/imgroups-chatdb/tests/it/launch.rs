//! Starting Messages with the helper (`mac::launch`), on a scripted operating system: each way
//! it fails on a real Mac gives its own error, and a helper that greets ends it.

use std::sync::Arc;
use std::time::Duration;

use imgroups_chatdb::mac::launch::{
    launch_messages, port_holder, port_taken_message, LaunchError, LaunchOptions,
};
use imgroups_chatdb::testing::{
    FakeHelper, FakeHelperOptions, Fixture, ScriptedChild, ScriptedSystem, Version,
};
use imgroups_chatdb::{default_port, BlueBubblesHelper, HelperOptions, MESSAGES_EXECUTABLES};

const DYLIB: &str = "/opt/helper/BlueBubblesHelper.dylib";
const SIP_OFF: &str = "System Integrity Protection status: disabled.\n";
const SIP_ON: &str = "System Integrity Protection status: enabled.\n";

fn options() -> LaunchOptions {
    LaunchOptions {
        ping_timeout: Duration::from_millis(500),
        quit_timeout: Duration::from_millis(300),
        quick_exit: Duration::from_secs(5),
        poll: Duration::from_millis(10),
        ..LaunchOptions::new(DYLIB)
    }
}

/// A helper listener on a free port, and the uid whose helper port it is (45670 + uid - 501);
/// it stands for this user's helper port.
async fn listener() -> (BlueBubblesHelper, u32) {
    // A free port in the helper range (45670..): tried from a per-process offset.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 46000 + (std::process::id() * 7 + n * 13) % 19000;
        let port = port as u16;
        if let Ok(helper) =
            BlueBubblesHelper::bind_with(("127.0.0.1", port), HelperOptions::default()).await
        {
            return (helper, u32::from(port) + 501 - 45670);
        }
    }
}

/// A Mac with the dylib and Messages installed, SIP as given, Messages not running.
fn mac_for(uid: u32, sip: &str) -> Arc<ScriptedSystem> {
    let system = Arc::new(ScriptedSystem::new(uid));
    system
        .file(DYLIB)
        .file(MESSAGES_EXECUTABLES[0])
        .answer("csrutil", 0, sip)
        .answer("killall", 1, "")
        .answer("pgrep", 1, "");
    system
}

#[tokio::test]
async fn messages_is_restarted_with_the_helper_and_the_ping_ends_the_wait() {
    let (helper, uid) = listener().await;
    let f = Fixture::new(Version::Tahoe);
    let system = mac_for(uid, SIP_OFF);
    let addr = helper.local_addr();
    let db = f.path();
    let fakes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = fakes.clone();
    let runtime = tokio::runtime::Handle::current();
    system.on_spawn(move |_, env| {
        assert_eq!(
            env,
            [("DYLD_INSERT_LIBRARIES".to_owned(), DYLIB.to_owned())]
        );
        // "Messages" starts, and its helper connects.
        let db = db.clone();
        let kept = kept.clone();
        runtime.spawn(async move {
            let fake = FakeHelper::connect(addr, db, FakeHelperOptions::default())
                .await
                .unwrap();
            kept.lock().unwrap().push(fake);
        });
        Ok(Box::new(ScriptedChild::new(4242)))
    });
    let launched = launch_messages(&options(), system.clone(), &helper)
        .await
        .expect("launched");
    assert_eq!(launched.pid, 4242);
    assert_eq!(launched.executable.to_str(), Some(MESSAGES_EXECUTABLES[0]));
    let ran = system.ran();
    let order: Vec<&str> = ran.iter().map(|c| c.split(' ').next().unwrap()).collect();
    assert_eq!(order, ["csrutil", "killall", "pgrep", "spawn"], "{ran:?}");
    assert!(
        ran[3].ends_with(&format!("DYLD_INSERT_LIBRARIES={DYLIB}")),
        "{ran:?}"
    );
}

#[tokio::test]
async fn sip_on_is_said_before_anything_is_quit() {
    let (helper, uid) = listener().await;
    let system = mac_for(uid, SIP_ON);
    let err = launch_messages(&options(), system.clone(), &helper)
        .await
        .unwrap_err();
    assert!(matches!(err, LaunchError::SipEnabled { .. }), "{err}");
    assert!(err.to_string().contains("csrutil disable"), "{err}");
    assert!(
        !system.ran().iter().any(|c| c.starts_with("killall")),
        "Messages left alone"
    );
}

#[tokio::test]
async fn messages_exiting_at_once_points_at_library_validation() {
    let (helper, uid) = listener().await;
    let system = mac_for(uid, SIP_OFF);
    system.on_spawn(|_, _| {
        let child = ScriptedChild::new(7);
        child.exit(Some(134));
        Ok(Box::new(child))
    });
    let err = launch_messages(&options(), system, &helper)
        .await
        .unwrap_err();
    assert!(matches!(err, LaunchError::MessagesExited { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("at once") && text.contains("exit code 134"),
        "{text}"
    );
    assert!(text.contains("DisableLibraryValidation"), "{text}");
}

#[tokio::test]
async fn no_ping_in_time_is_its_own_error() {
    let (helper, uid) = listener().await;
    let system = mac_for(uid, SIP_OFF);
    system.on_spawn(|_, _| Ok(Box::new(ScriptedChild::new(9))));
    let err = launch_messages(&options(), system, &helper)
        .await
        .unwrap_err();
    assert!(matches!(err, LaunchError::NoPing { pid: 9, .. }), "{err}");
    assert!(err.to_string().contains(DYLIB), "{err}");
}

#[tokio::test]
async fn missing_pieces_are_named() {
    let (helper, uid) = listener().await;
    let no_dylib = Arc::new(ScriptedSystem::new(uid));
    no_dylib.file(MESSAGES_EXECUTABLES[0]);
    let err = launch_messages(&options(), no_dylib, &helper)
        .await
        .unwrap_err();
    assert_eq!(err, LaunchError::NoDylib(DYLIB.into()));

    let no_messages = Arc::new(ScriptedSystem::new(uid));
    no_messages.file(DYLIB);
    let err = launch_messages(&options(), no_messages, &helper)
        .await
        .unwrap_err();
    assert_eq!(err, LaunchError::NoMessages);

    // The listener is not on this user's helper port.
    let other_user = mac_for(uid + 1, SIP_OFF);
    let err = launch_messages(&options(), other_user, &helper)
        .await
        .unwrap_err();
    assert!(matches!(err, LaunchError::WrongPort { .. }), "{err}");

    // Messages does not quit.
    let stuck = mac_for(uid, SIP_OFF);
    stuck.answer("pgrep", 0, "123\n");
    let err = launch_messages(&options(), stuck, &helper)
        .await
        .unwrap_err();
    assert!(matches!(err, LaunchError::Quit(_)), "{err}");
}

#[test]
fn a_taken_port_names_bluebubbles() {
    let system = ScriptedSystem::new(501);
    system.answer("lsof", 0, "p321\ncBlueBubbles\n");
    let holder = port_holder(&system, default_port(501)).unwrap();
    assert_eq!(holder.pid, 321);
    let text = port_taken_message(45670, Some(&holder));
    assert!(text.contains("BlueBubbles server (pid 321)"), "{text}");
    assert!(text.contains("quit BlueBubbles"), "{text}");
    let unknown = port_taken_message(45670, None);
    assert!(unknown.contains("lsof -nP -iTCP:45670"), "{unknown}");
    assert!(port_holder(&ScriptedSystem::new(501), 45670).is_none());
}
