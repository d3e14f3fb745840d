package leakcheck

import (
	"testing"
	"time"
)

// TestFindWaitsForEndingGoroutines: a goroutine that ends within the wait
// is not a leak; one that outlives it is reported.
func TestFindWaitsForEndingGoroutines(t *testing.T) {
	stop := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		<-stop
		close(ended)
	}()
	if err := find(50 * time.Millisecond); err == nil {
		t.Fatal("a goroutine blocked for the whole wait was not reported")
	}
	time.AfterFunc(600*time.Millisecond, func() { close(stop) })
	if err := find(Wait); err != nil {
		t.Fatalf("a goroutine ending during the wait was reported: %v", err)
	}
	<-ended
}
