//! Host collectors shared by the exporters that run on a Seattle machine (servers and nodes).
