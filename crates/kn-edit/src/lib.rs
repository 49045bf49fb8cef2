//! Interventions on knowledge neurons and knowledge editing
