package bridge

// routeStack is the frame of growStack: with what lies below it, the
// goroutine gets a 16 KiB stack, about what routing and sending one
// dispatch reach (route, the sender, its SMTP or HTTP exchange,
// rendering). A 32 KiB stack saved nothing more and cost 26 MB of RSS.
const routeStack = 12 << 10

// stackProbe is read by growStack so that its array is not optimized away.
var stackProbe int

// growStack grows the calling goroutine's stack to its working size at
// once, while the stack is nearly empty and cheap to copy. Each dispatch
// and each queue row is sent by a goroutine of its own, which starts with
// a small stack; grown by doubling on the way down the send path, it was
// copied several times with every frame on it (runtime.newstack: 7.3 % of
// the sidecar's CPU in an end-to-end run, 1.4 % with this).
//
//go:noinline
func growStack() byte {
	var b [routeStack]byte
	return b[stackProbe]
}
