package onnxruntime_go

// #include <stdlib.h>
import "C"

import "sync/atomic"

// LogFunc receives one of the runtime's log messages: its severity, its
// category ("onnxruntime", "VSINPU"...), where in the runtime's source it
// was written ("sequential_executor.cc:572 ExecuteKernel") and the message.
type LogFunc func(level LoggingLevel, category, location, message string)

var logFunc atomic.Pointer[LogFunc]

// SetLogFunc sends the runtime's log messages to f instead of stderr
// (where the runtime writes them with terminal colour codes). Call it
// before InitializeEnvironment: the environment takes its logger when it
// is created. f may be called from the runtime's own threads, at once
// from several.
func SetLogFunc(f LogFunc) {
	if f == nil {
		logFunc.Store(nil)
		return
	}
	logFunc.Store(&f)
}

//export goOrtLog
func goOrtLog(severity C.int, category, location, message *C.char) {
	f := logFunc.Load()
	if f == nil {
		return
	}
	(*f)(LoggingLevel(severity), C.GoString(category), C.GoString(location), C.GoString(message))
}
