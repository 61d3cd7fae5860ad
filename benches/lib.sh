# Shell helpers of the bench scripts (sourced from the repository root).

# A free loopback TCP port.
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
