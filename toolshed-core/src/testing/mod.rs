//! In-memory doubles. (Filled by the services work of issue 2.)
