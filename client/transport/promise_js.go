//go:build js

package transport

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
)

// awaitJS waits for a JavaScript promise and returns its value, or its
// rejection as an error. When ctx ends first it returns ctx.Err(); the
// promise's callbacks are released once it settles. It must not run on
// the goroutine of a js.Func callback (that would block the event loop
// the promise needs).
func awaitJS(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	resolve := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg0(args)}
		return nil
	})
	reject := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: jsError(arg0(args))}
		return nil
	})
	release := func() {
		resolve.Release()
		reject.Release()
	}
	if err := jsCall(p, "then", resolve, reject); err != nil {
		release()
		return js.Undefined(), err
	}
	select {
	case r := <-ch:
		release()
		return r.v, r.err
	case <-ctx.Done():
		go func() { <-ch; release() }()
		return js.Undefined(), ctx.Err()
	}
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// jsError turns a JavaScript exception or rejection reason into an error.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		name, msg := v.Get("name"), v.Get("message")
		if msg.Type() == js.TypeString {
			if name.Type() == js.TypeString && name.String() != "" {
				return fmt.Errorf("%s: %s", name.String(), msg.String())
			}
			return errors.New(msg.String())
		}
	}
	if v.IsUndefined() || v.IsNull() {
		return errors.New("rejected without a reason")
	}
	return errors.New(v.Call("toString").String())
}

// jsCall calls v.method(args...), turning a thrown exception (which
// syscall/js raises as a panic) into an error.
func jsCall(v js.Value, method string, args ...any) (err error) {
	_, err = jsCallValue(v, method, args...)
	return err
}

// jsCallValue is jsCall returning the call's value.
func jsCallValue(v js.Value, method string, args ...any) (out js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = fmt.Errorf("%s: %w", method, jsError(je.Value))
			} else {
				err = fmt.Errorf("%s: %v", method, r)
			}
		}
	}()
	return v.Call(method, args...), nil
}

// ignoreRejection keeps a promise whose outcome nobody waits for from
// being reported as an unhandled rejection.
var ignoreRejection = js.FuncOf(func(js.Value, []js.Value) any { return nil })

func quiet(p js.Value) {
	if p.Type() == js.TypeObject {
		jsCall(p, "catch", ignoreRejection)
	}
}

// bytesToJS copies b into a new Uint8Array.
func bytesToJS(b []byte) js.Value {
	arr := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(arr, b)
	return arr
}

// bytesFromJS copies a Uint8Array (or ArrayBuffer) into Go.
func bytesFromJS(v js.Value) []byte {
	arr := v
	if !v.InstanceOf(js.Global().Get("Uint8Array")) {
		arr = js.Global().Get("Uint8Array").New(v)
	}
	p := make([]byte, arr.Length())
	js.CopyBytesToGo(p, arr)
	return p
}
