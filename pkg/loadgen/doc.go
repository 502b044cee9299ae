// Package loadgen will hold infer bench's load generator: pacing (open and
// closed loop), targets, and recording into HdrHistogram with coordinated
// omission corrected. It is empty until that work lands.
package loadgen
