package deploy

import "encoding/json"

// A step is an index into Spec.Steps in the code and a number counted
// from 1 wherever people or programs read it: the state file, the admin
// API and the command line's JSON all say "step": 1 for the first step,
// as the text output says "step 1 of 3".

// MarshalJSON writes the event with its step counted from 1.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	p := plain(e)
	p.Step++
	return json.Marshal(p)
}

// UnmarshalJSON reads an event whose step is counted from 1.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	p.Step = max(p.Step-1, 0)
	*e = Event(p)
	return nil
}

// MarshalJSON writes the state with its step counted from 1.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	p := plain(s)
	p.Step++
	return json.Marshal(p)
}

// UnmarshalJSON reads a state whose step is counted from 1.
func (s *State) UnmarshalJSON(b []byte) error {
	type plain State
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	p.Step = max(p.Step-1, 0)
	*s = State(p)
	return nil
}
