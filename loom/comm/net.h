// Small socket helpers shared by the TCP store and the TCP transport (internal to comm).
#pragma once

#include <cstddef>
#include <string>

namespace loom::comm::net {

// Listens on host:port (port 0: any free port); returns the fd and the bound port.
int listen_on(const std::string& host, int port, int* bound_port);
// Connects to host:port, retrying connection refusals until timeout_s; throws on failure.
int connect_to(const std::string& host, int port, double timeout_s);
// Blocking full read/write; false on EOF or error.
bool write_all(int fd, const void* data, size_t n);
bool read_all(int fd, void* data, size_t n);
void set_nodelay(int fd);
void set_nonblocking(int fd);
// "host:port" -> host, port; throws on bad input.
void split_host_port(const std::string& s, std::string* host, int* port);

}  // namespace loom::comm::net
