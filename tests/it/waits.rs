//! Waits between threads: a wait that would close a cycle of waits fails at once and names
//! it; a wait that is not part of one waits as before; snapshots show who waits on whom.

use std::time::Duration;

use taskthread::prelude::*;
use taskthread::proxy::Reply;
use taskthread::{AskError, WaitKind, Waiting};

/// Long enough for every other thread to run until it blocks (the clock is paused).
const SETTLE: Duration = Duration::from_millis(10);
/// A deadlock would end here instead of failing at once: the tests treat it as failure.
const HANG: Duration = Duration::from_secs(60);

struct Chat;
struct Report;
#[derive(Debug, PartialEq)]
struct Fill(u32);

/// Sends three messages UP on `Chat`; its parent's queue holds one, and its own place
/// there one more.
#[derive(Default)]
struct Chatty;

#[taskthread(up = u32, capacity = 1)]
impl Chatty {
    #[down]
    async fn chat(&mut self, ctx: &mut Ctx<Self>, _c: Chat) -> Result<()> {
        ctx.up(1).await?;
        ctx.up(2).await?;
        ctx.up(3).await?;
        Ok(())
    }

    #[down]
    async fn report(&mut self, _ctx: &mut Ctx<Self>, _r: Report) -> Result<&'static str> {
        Ok("all said")
    }

    #[down]
    async fn fill(&mut self, _ctx: &mut Ctx<Self>, _f: Fill) {}
}

struct AskWhileChatty;
struct SendWhileChatty;
struct Heard;

/// Starts its chatty child, lets it fill this thread's queue, then waits on it.
#[derive(Default)]
struct Boss {
    heard: Vec<u32>,
}

#[taskthread]
impl Boss {
    #[down]
    async fn ask_while_chatty(
        &mut self,
        ctx: &mut Ctx<Self>,
        _a: AskWhileChatty,
    ) -> Result<(String, Option<String>, Vec<Waiting>, String)> {
        let chatty = ctx.spawn(Chatty);
        chatty.send(Chat).await?;
        tokio::time::sleep(SETTLE).await; // chatty waits for room UP in this thread now
        let snapshot = ctx.snapshot();
        let waiting = snapshot
            .find("boss/chatty")
            .expect("chatty")
            .waiting
            .clone();
        let err = chatty.ask(Report).await.unwrap_err();
        let cycle = err.cycle().map(ToString::to_string);
        let question_back = err.to_string();
        match err {
            AskError::Cycle { question: None, .. } => {}
            other => panic!("expected a cycle found waiting for the answer, got {other:?}"),
        }
        Ok((question_back, cycle, waiting, snapshot.to_string()))
    }

    #[down]
    async fn send_while_chatty(
        &mut self,
        ctx: &mut Ctx<Self>,
        _s: SendWhileChatty,
    ) -> Result<(Option<String>, Fill)> {
        let chatty = ctx.spawn(Chatty);
        chatty.send(Chat).await?;
        tokio::time::sleep(SETTLE).await; // chatty is in `chat`, waiting UP on this thread
        chatty.send(Fill(1)).await?; // its one place
        let err = chatty.send(Fill(2)).await.unwrap_err();
        let cycle = err.cycle().map(ToString::to_string);
        Ok((cycle, err.into_inner()))
    }

    #[down]
    async fn heard(&mut self, _ctx: &mut Ctx<Self>, _h: Heard) -> Result<Vec<u32>> {
        Ok(self.heard.clone())
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, n: u32) {
        self.heard.push(n);
    }
}

/// The heard messages, once `n` have arrived.
async fn heard(boss: &Handle<Boss>, n: usize) -> Vec<u32> {
    loop {
        let heard = boss.ask(Heard).await.unwrap();
        if heard.len() >= n {
            return heard;
        }
        tokio::time::sleep(SETTLE).await;
    }
}

#[tokio::test(start_paused = true)]
async fn asking_a_child_that_waits_up_on_the_asker_fails_at_once_naming_the_cycle() {
    let boss = taskthread::spawn_with(Boss::default(), ChildOptions::new().capacity(1));
    let (message, cycle, waiting, rendered) = tokio::time::timeout(HANG, boss.ask(AskWhileChatty))
        .await
        .expect("the ask fails at once instead of waiting forever")
        .unwrap();
    assert_eq!(cycle.as_deref(), Some("boss → boss/chatty → boss"));
    assert!(
        message.contains("boss → boss/chatty → boss"),
        "the error names the cycle: {message}"
    );
    // Before the ask, the snapshot showed chatty waiting for room UP in the boss.
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].kind, WaitKind::Up);
    assert_eq!(waiting[0].path, "boss");
    assert_eq!(waiting[0].on, boss.id());
    assert!(
        rendered
            .lines()
            .any(|l| l.contains("[boss/chatty]") && l.ends_with(", waits for room UP in boss")),
        "{rendered}"
    );
    // Once the boss's handler returned, chatty's wait ended: nothing was lost.
    assert_eq!(heard(&boss, 3).await, [1, 2, 3]);
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn sending_to_a_full_child_that_waits_up_on_the_sender_fails_and_gives_the_message_back() {
    let boss = taskthread::spawn_with(Boss::default(), ChildOptions::new().capacity(1));
    let (cycle, message) = tokio::time::timeout(HANG, boss.ask(SendWhileChatty))
        .await
        .expect("the send fails at once instead of waiting forever")
        .unwrap();
    assert_eq!(cycle.as_deref(), Some("boss → boss/chatty → boss"));
    assert_eq!(message, Fill(2));
    assert_eq!(heard(&boss, 3).await, [1, 2, 3]);
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

// ---- a thread waiting on itself --------------------------------------------------------

struct Me(ChildRef<Narcissus>);
struct Echo(u32);

/// Sends to its own queue (of one place) from a handler: the second send would wait for
/// room only this thread can make.
#[derive(Default)]
struct Narcissus {
    me: Option<ChildRef<Narcissus>>,
    echoes: Vec<u32>,
}

#[taskthread(capacity = 1)]
impl Narcissus {
    #[down]
    async fn me(&mut self, _ctx: &mut Ctx<Self>, Me(me): Me) -> Result<(Option<String>, u32)> {
        me.send(Echo(1)).await?; // the one place
        let err = me.send(Echo(2)).await.unwrap_err();
        self.me = Some(me);
        Ok((err.cycle().map(ToString::to_string), err.into_inner().0))
    }

    #[down]
    async fn echo(&mut self, _ctx: &mut Ctx<Self>, Echo(n): Echo) -> Result<()> {
        self.echoes.push(n);
        Ok(())
    }

    #[down]
    async fn heard(&mut self, _ctx: &mut Ctx<Self>, _h: Heard) -> Result<Vec<u32>> {
        Ok(self.echoes.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn a_thread_waiting_for_room_in_its_own_queue_fails_at_once() {
    let narcissus = taskthread::spawn(Narcissus::default());
    let me = narcissus.child_ref();
    let (cycle, back) = tokio::time::timeout(HANG, narcissus.ask(Me(me)))
        .await
        .expect("the send fails at once instead of waiting forever")
        .unwrap();
    assert_eq!(cycle.as_deref(), Some("narcissus → narcissus"));
    assert_eq!(back, 2, "the message comes back");
    assert_eq!(narcissus.ask(Heard).await.unwrap(), [1]);
    narcissus.stop();
    assert!(matches!(narcissus.join().await, Exit::Stopped));
}

// ---- the child's wait closes the cycle ----------------------------------------------------

struct Talk;
struct Take;

/// Sends three messages UP after a pause; its parent's queue holds one, and its own place
/// one more. It keeps the error of a send that would never end.
#[derive(Default)]
struct Late {
    error: Option<(Option<String>, u32)>,
}

#[taskthread(up = u32, capacity = 1)]
impl Late {
    #[down]
    async fn talk(&mut self, ctx: &mut Ctx<Self>, _t: Talk) -> Result<()> {
        tokio::time::sleep(SETTLE).await; // the parent waits for room in this queue now
        ctx.up(1).await?; // the parent's one shared place
        ctx.up(2).await?; // this thread's own place there
        if let Err(err) = ctx.up(3).await {
            self.error = Some((err.cycle().map(ToString::to_string), err.into_inner()));
        }
        Ok(())
    }

    #[down]
    async fn take(&mut self, _ctx: &mut Ctx<Self>, _t: Take) {}

    #[down]
    async fn pause(&mut self, _ctx: &mut Ctx<Self>, _p: Pause) {
        tokio::time::sleep(SETTLE).await;
    }

    #[down]
    async fn error(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _h: Heard,
    ) -> Result<Option<(Option<String>, u32)>> {
        Ok(self.error.clone())
    }
}

struct Flood;

/// Fills its child's queue while the child waits to send UP to it.
#[derive(Default)]
struct Flooder;

#[taskthread]
impl Flooder {
    #[down]
    async fn flood(
        &mut self,
        ctx: &mut Ctx<Self>,
        _f: Flood,
    ) -> Result<Option<(Option<String>, u32)>> {
        let late = ctx.spawn(Late::default());
        late.send(Talk).await?;
        late.send(Take).await?; // its one place
        late.send(Take).await?; // waits until the child's up fails and it takes the first
        Ok(late.ask(Heard).await?)
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) {}
}

#[tokio::test(start_paused = true)]
async fn a_child_that_starts_waiting_up_on_a_parent_waiting_on_it_fails_its_up() {
    let flooder = taskthread::spawn_with(Flooder, ChildOptions::new().capacity(1));
    let error = tokio::time::timeout(HANG, flooder.ask(Flood))
        .await
        .expect("the child's up fails at once, and the parent's send goes through")
        .unwrap();
    assert_eq!(
        error,
        Some((Some("flooder/late → flooder → flooder/late".to_owned()), 3))
    );
    flooder.stop();
    assert!(matches!(flooder.join().await, Exit::Stopped));
}

// ---- waits that are not cycles ----------------------------------------------------------

struct Ping;

/// Answers after a while.
struct Slow;

#[taskthread]
impl Slow {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok("pong")
    }
}

/// Asks its slow child.
struct Asker;

#[taskthread]
impl Asker {
    #[down]
    async fn ping(&mut self, ctx: &mut Ctx<Self>, p: Ping) -> Result<&'static str> {
        let slow = ctx.spawn(Slow);
        Ok(slow.ask(p).await?)
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_is_no_cycle_waits_and_the_snapshot_shows_it() {
    let asker = taskthread::spawn(Asker);
    let answer = {
        let asker = asker.child_ref();
        tokio::spawn(async move { asker.ask(Ping).await })
    };
    tokio::time::sleep(SETTLE).await;
    let snapshot = asker.snapshot();
    let slow = snapshot.find("asker/slow").expect("the slow child");
    assert_eq!(snapshot.waiting.len(), 1, "{snapshot}");
    assert_eq!(snapshot.waiting[0].kind, WaitKind::Answer);
    assert_eq!(snapshot.waiting[0].on, slow.id);
    assert_eq!(snapshot.waiting[0].path, "asker/slow");
    assert!(
        snapshot
            .to_string()
            .contains("waits for an answer from asker/slow"),
        "{snapshot}"
    );
    assert!(slow.waiting.is_empty(), "the slow child waits on nobody");
    assert_eq!(answer.await.unwrap().unwrap(), "pong");
    assert!(asker.snapshot().waiting.is_empty(), "the wait is over");
    asker.stop();
    assert!(matches!(asker.join().await, Exit::Stopped));
}

/// Sends UP more than its parent's queue holds while the parent is busy elsewhere.
struct Talker;

#[taskthread(up = u32)]
impl Talker {
    #[down]
    async fn chat(&mut self, ctx: &mut Ctx<Self>, _c: Chat) -> Result<()> {
        for n in 1..=3 {
            ctx.up(n).await?;
        }
        Ok(())
    }
}

struct Busy;

/// Starts its talker, then sleeps in a handler: the talker waits, but not in a cycle.
#[derive(Default)]
struct Sleeper {
    heard: Vec<u32>,
}

#[taskthread]
impl Sleeper {
    #[down]
    async fn busy(&mut self, ctx: &mut Ctx<Self>, _b: Busy) -> Result<Vec<Waiting>> {
        let talker = ctx.spawn(Talker);
        talker.send(Chat).await?;
        tokio::time::sleep(SETTLE).await;
        let snapshot = ctx.snapshot();
        Ok(snapshot
            .find("sleeper/talker")
            .expect("talker")
            .waiting
            .clone())
    }

    #[down]
    async fn heard(&mut self, _ctx: &mut Ctx<Self>, _h: Heard) -> Result<Vec<u32>> {
        Ok(self.heard.clone())
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, n: u32) {
        self.heard.push(n);
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_waiting_up_on_a_busy_parent_waits_and_delivers() {
    let sleeper = taskthread::spawn_with(Sleeper::default(), ChildOptions::new().capacity(1));
    let waiting = sleeper.ask(Busy).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].kind, WaitKind::Up);
    assert_eq!(waiting[0].path, "sleeper");
    loop {
        let heard = sleeper.ask(Heard).await.unwrap();
        if heard.len() == 3 {
            assert_eq!(heard, [1, 2, 3]);
            break;
        }
        tokio::time::sleep(SETTLE).await;
    }
    sleeper.stop();
    assert!(matches!(sleeper.join().await, Exit::Stopped));
}

// ---- an answered ask is no wait ------------------------------------------------------------

struct FillUp;
struct Question;
struct ThenUp;
struct Outcome;

/// Sends one message UP when told: it fills its parent's queue of one.
struct Filler;

#[taskthread(up = u32)]
impl Filler {
    #[down]
    async fn fill(&mut self, ctx: &mut Ctx<Self>, _f: FillUp) -> Result<()> {
        ctx.up(7).await?;
        Ok(())
    }
}

/// Answers a question, then (its next message, handled in the same turn, before the asker
/// has run again) sends UP into its parent's full queue.
#[derive(Default)]
struct Answerer {
    up: Option<std::result::Result<(), String>>,
}

#[taskthread(up = u32)]
impl Answerer {
    #[down]
    async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> Result<u32> {
        Ok(1)
    }

    #[down]
    async fn then_up(&mut self, ctx: &mut Ctx<Self>, _t: ThenUp) -> Result<()> {
        self.up = Some(ctx.up(2).await.map_err(|e| e.to_string()));
        Ok(())
    }

    #[down]
    async fn outcome(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _o: Outcome,
    ) -> Result<Option<std::result::Result<(), String>>> {
        Ok(self.up.clone())
    }
}

struct Go;

/// Fills its own queue with a child's message, then asks the other child and sends it
/// more while waiting for the answer.
#[derive(Default)]
struct Questioner {
    answerer: Option<ChildRef<Answerer>>,
    heard: Vec<u32>,
}

#[taskthread]
impl Questioner {
    #[down]
    async fn go(&mut self, ctx: &mut Ctx<Self>, _g: Go) -> Result<u32> {
        let filler = ctx.spawn(Filler);
        let answerer = ctx.spawn(Answerer::default());
        filler.send(FillUp).await?;
        tokio::time::sleep(SETTLE).await; // this thread's one place is taken
        // The answer comes, then the answerer waits for room UP before this thread has
        // looked at the answer: a wait on a thread that no longer waits on it.
        let (answer, sent) = tokio::join!(answerer.ask(Question), answerer.send(ThenUp));
        sent?;
        self.answerer = Some(answerer);
        Ok(answer?)
    }

    #[down]
    async fn outcome(
        &mut self,
        ctx: &mut Ctx<Self>,
        _o: Outcome,
    ) -> Result<Option<std::result::Result<(), String>>> {
        let _ = ctx;
        let answerer = self.answerer.as_ref().expect("the answerer");
        Ok(answerer.ask(Outcome).await?)
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, n: u32) {
        self.heard.push(n);
    }
}

#[tokio::test(start_paused = true)]
async fn a_thread_that_answered_is_not_waited_on_for_that_answer() {
    let questioner = taskthread::spawn_with(Questioner::default(), ChildOptions::new().capacity(1));
    assert_eq!(questioner.ask(Go).await.unwrap(), 1);
    // The questioner's queue drained: the answerer's `up` went through, not a false cycle.
    let outcome = loop {
        if let Some(outcome) = questioner.ask(Outcome).await.unwrap() {
            break outcome;
        }
        tokio::time::sleep(SETTLE).await;
    };
    assert_eq!(outcome, Ok(()));
    questioner.stop();
    assert!(matches!(questioner.join().await, Exit::Stopped));
}

struct Pause;

/// Asks its child while the child pauses (its queue holds the question), then leaves the
/// child's UP messages in its own queue.
#[derive(Default)]
struct Patient;

#[taskthread]
impl Patient {
    #[down]
    async fn go(&mut self, ctx: &mut Ctx<Self>, _g: Go) -> Result<Option<(Option<String>, u32)>> {
        let late = ctx.spawn_with(Late::default(), ChildOptions::new().capacity(4));
        late.send(Pause).await?;
        late.send(Talk).await?;
        Ok(late.ask(Heard).await?)
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) {}
}

#[tokio::test(start_paused = true)]
async fn an_answer_sent_by_other_code_does_not_take_a_threads_asker_away() {
    let patient = taskthread::spawn_with(Patient, ChildOptions::new().capacity(1));
    // While the child pauses, with its parent's ask waiting, other code on this OS thread
    // answers an ask of its own, as a proxy answers for a thread elsewhere.
    let other = tokio::spawn(async {
        tokio::time::sleep(SETTLE / 2).await;
        let (reply, answer) = Reply::<u32>::pair();
        reply.send(7);
        answer.await
    });
    let error = tokio::time::timeout(HANG, patient.ask(Go))
        .await
        .expect("the child's third send fails at once, and it answers")
        .unwrap();
    assert_eq!(
        error,
        Some((Some("patient/late → patient → patient/late".to_owned()), 3))
    );
    assert_eq!(other.await.unwrap().unwrap(), 7);
    patient.stop();
    assert!(matches!(patient.join().await, Exit::Stopped));
}

struct Spam(u32);
struct Knock;

/// Sends UP as fast as its parent takes it, until told to stop or a send would close a
/// cycle; then stops.
struct Spammer;

#[taskthread(up = u32)]
impl Spammer {
    #[down]
    async fn spam(&mut self, ctx: &mut Ctx<Self>, Spam(n): Spam) -> Result<()> {
        for i in 0..n {
            if let Err(e) = ctx.up(i).await {
                assert!(e.cycle().is_some(), "the parent runs: {e}");
                break;
            }
        }
        ctx.stop();
        Ok(())
    }

    #[down]
    async fn knock(&mut self, _ctx: &mut Ctx<Self>, _k: Knock) -> Result<bool> {
        Ok(true)
    }
}

/// Takes its spamming child's messages from a queue of one place and, after every third,
/// asks the child, which by then is waking to send the next or already waits: each wait
/// either ends or fails, and a round ends when the child has stopped. Counts the asks
/// answered and those that failed as closing a cycle.
#[derive(Default)]
struct Racer {
    rounds: u32,
    child: Option<ChildRef<Spammer>>,
    answered: u32,
    failed: u32,
}

impl Racer {
    fn next_round(&mut self, ctx: &mut Ctx<Self>) {
        let child = ctx.spawn(Spammer);
        child.try_send(Spam(30)).expect("an empty queue");
        self.child = Some(child);
    }
}

#[taskthread(up = (u32, u32), capacity = 1)]
impl Racer {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.next_round(ctx);
        Ok(())
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, n: u32) -> Result<()> {
        if n % 3 == 1
            && let Some(child) = &self.child
        {
            match child.ask(Knock).await {
                Ok(_) => self.answered += 1,
                Err(AskError::Ended(_)) => {}
                Err(AskError::Cycle { .. }) => self.failed += 1,
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    #[up]
    async fn ended(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, ended: ChildExit) -> Result<()> {
        if !matches!(ended.exit, Exit::Completed) {
            return Err(taskthread::Error::msg(format!(
                "a spammer ended: {}",
                ended.exit
            )));
        }
        self.rounds -= 1;
        if self.rounds == 0 {
            ctx.up((self.answered, self.failed)).await?;
        } else {
            self.next_round(ctx);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_asking_a_child_as_it_starts_to_wait_up_never_deadlocks() {
    const ROUNDS: u32 = 10_000;
    let mut racer = taskthread::spawn(Racer {
        rounds: ROUNDS,
        ..Racer::default()
    });
    let report = tokio::time::timeout(HANG, racer.recv())
        .await
        .expect("every wait ended or failed: no deadlock");
    // A cycle is found by the ask, by the child's `up`, or by both; the racer fails on any
    // other error of an ask, and on a child that did not stop cleanly.
    let Some((answered, failed)) = report else {
        panic!("the racer ended: {}", racer.join().await);
    };
    assert!(
        answered > 0,
        "the racer asked: {answered} answered, {failed} failed"
    );
    racer.stop();
    assert!(matches!(racer.join().await, Exit::Stopped));
}

/// Messages for [`Relayer`]: hold until the gate opens; nothing; three messages UP.
struct HoldAt(std::sync::Arc<tokio::sync::Notify>);
struct Nothing;
struct SayThree;

/// A child with three places in its queue that says three things UP on [`SayThree`].
struct Relayer;

#[taskthread(up = u32, capacity = 3)]
impl Relayer {
    #[down]
    async fn hold_at(&mut self, _ctx: &mut Ctx<Self>, gate: HoldAt) -> Result<()> {
        gate.0.notified().await;
        Ok(())
    }

    #[down]
    async fn nothing(&mut self, _ctx: &mut Ctx<Self>, _n: Nothing) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn say_three(&mut self, ctx: &mut Ctx<Self>, _s: SayThree) -> Result<()> {
        for n in 1..=3 {
            ctx.up(n).await?;
        }
        Ok(())
    }
}

/// DOWN to [`Listener`]: its child.
struct TheChild;
/// DOWN to [`Listener`]: send [`Nothing`] to the child, waiting for room.
struct SendNothing;
/// DOWN to [`Listener`]: what it heard.
struct WhatHeard;

/// A parent with one place in its queue, whose child is a [`Relayer`].
#[derive(Default)]
struct Listener {
    child: Option<ChildRef<Relayer>>,
    heard: Vec<u32>,
}

#[taskthread(capacity = 1)]
impl Listener {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.child = Some(ctx.spawn(Relayer));
        Ok(())
    }

    #[down]
    async fn the_child(&mut self, _ctx: &mut Ctx<Self>, _q: TheChild) -> Result<ChildRef<Relayer>> {
        Ok(self.child.clone().expect("spawned in enter"))
    }

    #[down]
    async fn send_nothing(&mut self, _ctx: &mut Ctx<Self>, _s: SendNothing) -> Result<()> {
        self.child
            .as_ref()
            .expect("spawned in enter")
            .send(Nothing)
            .await?;
        Ok(())
    }

    #[down]
    async fn heard(&mut self, _ctx: &mut Ctx<Self>, _q: WhatHeard) -> Result<Vec<u32>> {
        Ok(self.heard.clone())
    }

    #[up]
    async fn said(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, n: u32) {
        self.heard.push(n);
    }
}

/// A parent waits for room in its child's queue; the child hands out a message of its batch,
/// whose place is owed to the parent, and its handler then waits for room in the parent's
/// full queue. Not a cycle: the parent's place is free, and a look for a cycle promises it.
#[tokio::test(start_paused = true)]
async fn a_parent_owed_a_place_in_its_childs_queue_is_not_taken_for_waiting() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let root = taskthread::spawn(Listener::default());
    let child = root.ask(TheChild).await.unwrap();
    child
        .try_send(HoldAt(std::sync::Arc::clone(&gate)))
        .unwrap_or_else(|_| panic!("room"));
    tokio::time::sleep(SETTLE).await;
    // The child holds at the gate with its three places taken; a task, then the parent,
    // wait for room in its queue, in that order.
    assert!(child.try_send(Nothing).is_ok() && child.try_send(SayThree).is_ok());
    assert!(child.try_send(Nothing).is_ok());
    let first = tokio::spawn({
        let child = child.clone();
        async move { child.send(Nothing).await.is_ok() }
    });
    tokio::time::sleep(SETTLE).await;
    root.send(SendNothing).await.unwrap();
    tokio::time::sleep(SETTLE).await;
    // The child takes the three queued messages at once: the place of the first goes to the
    // task, that of `SayThree` is owed to the parent as its handler says three things UP
    // into the parent's one place and its own, and waits for the third.
    gate.notify_one();
    assert!(tokio::time::timeout(HANG, first).await.unwrap().unwrap());
    let heard = tokio::time::timeout(HANG, root.ask(WhatHeard)).await;
    assert_eq!(heard.expect("no hang").unwrap(), [1, 2, 3]);
    assert!(!child.is_closed(), "the child did not fail");
    root.stop();
    root.join().await;
}
