//! `getConfigurations` (`GET /api/v2.0/configurations`, system admins only: 401 anonymous, 403
//! others), answering the items the fake has: `storage_per_project` (the hard limit new projects
//! get), `quota_per_project_enable` and `project_creation_restriction`, each an
//! `{value, editable}` item as the swagger's `ConfigurationsResponse` has them. Other methods
//! are refused.

use serde_json::json;

use super::projects::Call;
use super::{Answer, Presented, State};

pub(super) fn route(state: &State, call: &Call) -> Answer {
    if call.method != "GET" {
        return Answer::error(
            405,
            "METHOD_NOT_ALLOWED",
            &format!(
                "the fake Harbor does not implement {} {}",
                call.method, call.path
            ),
        );
    }
    let Presented::Valid(user) = call.presented else {
        return Answer::error(401, "UNAUTHORIZED", "unauthorized");
    };
    if !state.admins.contains(user) {
        return Answer::error(403, "FORBIDDEN", "forbidden");
    }
    let book = state.book();
    let restriction = if book.only_admin_creates {
        "adminonly"
    } else {
        "everyone"
    };
    Answer::json(
        200,
        &json!({
            "storage_per_project": {"value": book.default_limit, "editable": true},
            "quota_per_project_enable": {"value": true, "editable": true},
            "project_creation_restriction": {"value": restriction, "editable": true},
        }),
    )
}
