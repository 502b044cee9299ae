package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"
)

// RuntimeVersion is the ONNX Runtime release the project installs and
// tests against; the C API version onnxruntime_go speaks (24) needs at
// least this release's minor version.
const RuntimeVersion = "1.24.3"

// LibraryEnv names the environment variable that points at the ONNX Runtime
// shared library.
const LibraryEnv = "ONNXRUNTIME_LIB"

// setupCommand is what a user runs, from the repository, to install the
// library where LocateLibrary finds it.
const setupCommand = "scripts/setup-onnxruntime.sh (or make onnxruntime)"

// libraryNames are the file names looked for in a folder, in order.
var libraryNames = []string{"libonnxruntime.so.1", "libonnxruntime.so", "libonnxruntime." + RuntimeVersion + ".dylib", "libonnxruntime.dylib"}

// CacheDir returns the folder scripts/setup-onnxruntime.sh installs into:
// $XDG_CACHE_HOME/infer/onnxruntime/<version>/<os>-<arch>.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return filepath.Join(base, "infer", "onnxruntime", RuntimeVersion, runtime.GOOS+"-"+arch), nil
}

// LocateLibrary finds the ONNX Runtime shared library: the explicit path
// when one is given, then $ONNXRUNTIME_LIB, then the folder of the running
// binary, then the project's cache folder. A path given explicitly (by flag
// or environment) must exist; it is never silently skipped.
func LocateLibrary(explicit string) (string, error) {
	for _, p := range []struct{ path, from string }{{explicit, "--onnxruntime-lib"}, {os.Getenv(LibraryEnv), "$" + LibraryEnv}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return "", fmt.Errorf("ONNX Runtime library from %s: %w", p.from, err)
		}
		return p.path, nil
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if cache, err := CacheDir(); err == nil {
		dirs = append(dirs, cache)
	}
	for _, dir := range dirs {
		for _, name := range libraryNames {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("ONNX Runtime %s shared library not found (looked for %s in %s, after --onnxruntime-lib and $%s): install it with %s, or point --onnxruntime-lib at libonnxruntime.so",
		RuntimeVersion, libraryNames[0], strings.Join(dirs, " and "), LibraryEnv, setupCommand)
}

// Runtime describes the ONNX Runtime library the process loaded.
type Runtime struct {
	Path    string // the shared library's path
	Version string // the library's own version string, such as "1.24.3"
}

var (
	runtimeMu sync.Mutex
	loaded    *Runtime
)

// InitRuntime loads the ONNX Runtime shared library (see LocateLibrary) and
// creates the process-wide environment. It is safe to call more than once:
// later calls return the runtime already loaded, and fail if they name a
// different library.
func InitRuntime(libPath string) (*Runtime, error) {
	runtimeMu.Lock()
	defer runtimeMu.Unlock()
	if loaded != nil {
		if libPath != "" && libPath != loaded.Path {
			return nil, fmt.Errorf("ONNX Runtime already loaded from %s; cannot also load %s", loaded.Path, libPath)
		}
		return loaded, nil
	}
	path, err := LocateLibrary(libPath)
	if err != nil {
		return nil, err
	}
	ort.SetSharedLibraryPath(path)
	ort.SetLogFunc(runtimeLog)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("load ONNX Runtime from %s: %w (infer needs ONNX Runtime %s or newer; install it with %s)", path, err, RuntimeVersion, setupCommand)
	}
	// Linux builds send no telemetry; elsewhere turn it off. A failure here
	// changes nothing about inference, so it is not an error.
	_ = ort.DisableTelemetry()
	loaded = &Runtime{Path: path, Version: ort.GetVersion()}
	return loaded, nil
}

// LoadedRuntime returns the runtime InitRuntime loaded, or nil.
func LoadedRuntime() *Runtime {
	runtimeMu.Lock()
	defer runtimeMu.Unlock()
	return loaded
}
