//! OpenAI metadata generation for the Toolshed SDK. Filled by issue 4.
