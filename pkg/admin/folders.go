package admin

import (
	"net/http"
	"slices"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/httpapi"
)

// serveVersionFolders answers GET /v2/admin/models/{model}/versions with
// the version folders the repository holds for model now and those loaded
// and ready, so that a client can tell whether a load would bring anything
// new before it reloads a live model.
func (s *API) serveVersionFolders(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	folders, err := s.Repository().VersionFolders(name)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := deploy.VersionFolders{Model: name, Folders: folders, Ready: []int64{}}
	for _, st := range s.Repository().Index() {
		if st.Name == name && s.VersionReady(name, st.Version) {
			out.Ready = append(out.Ready, st.Version)
		}
	}
	slices.Sort(out.Ready)
	httpapi.WriteJSON(w, http.StatusOK, out)
}
