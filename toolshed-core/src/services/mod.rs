//! The use cases. (Filled by the services work of issue 2.)
