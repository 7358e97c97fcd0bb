"""A minimal IPVS generic-netlink client bound to one network namespace, for the VM benchmarks: polling the kernel
with it forks nothing (a fork+exec of ipvsadm per probe costs tenths of a second under emulation, and would steal
CPU from the program measured). Used by tests/vm/bench/inside-vm and tests/vm/bench/agent-latency."""

import ctypes
import os
import socket
import struct


class IpvsProbe:
    """A minimal IPVS generic-netlink client bound to one netns, so polling
    keepalived's progress forks nothing (a fork+exec per probe costs tenths of
    a second under emulation and would steal CPU from keepalived)."""

    NLMSG_ERROR, NLMSG_DONE = 2, 3
    NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP = 0x1, 0x2, 0x300
    GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 0x10, 3, 1, 2
    IPVS_CMD_GET_DEST, IPVS_CMD_ATTR_SERVICE, IPVS_CMD_ATTR_DEST = 8, 1, 2
    SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT = 1, 2, 3, 4
    DEST_ADDR, DEST_PORT, DEST_WEIGHT = 1, 2, 4

    def __init__(self, ns):
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet = 0x40000000
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            # A socket stays in the netns it was created in.
            if libc.setns(target, clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns}")
            try:
                self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
            finally:
                if libc.setns(own, clone_newnet) != 0:
                    raise SystemExit("inside-vm: cannot return to the initial netns")
        finally:
            os.close(own)
            os.close(target)
        self.sock.bind((0, 0))
        self.seq = 0
        reply = self._request(self.GENL_ID_CTRL, self.CTRL_CMD_GETFAMILY,
                              self._nla(self.CTRL_ATTR_FAMILY_NAME, b"IPVS\0"), dump=False)
        self.family = struct.unpack("=H", self._attrs(reply[0])[self.CTRL_ATTR_FAMILY_ID][:2])[0]

    @staticmethod
    def _nla(kind, payload):
        size = 4 + len(payload)
        return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)

    @staticmethod
    def _attrs(buf):
        out, off = {}, 0
        while off + 4 <= len(buf):
            size, kind = struct.unpack_from("=HH", buf, off)
            if size < 4:
                break
            out[kind & 0x3FFF] = buf[off + 4:off + size]
            off += (size + 3) & ~3
        return out

    def _request(self, family, cmd, attrs, dump):
        """Send one request; return the attribute payloads of the replies."""
        self.seq += 1
        body = struct.pack("=BBH", cmd, 1, 0) + attrs
        flags = self.NLM_F_REQUEST | (self.NLM_F_DUMP if dump else 0)
        self.sock.send(struct.pack("=IHHII", 16 + len(body), family, flags, self.seq, 0) + body)
        replies = []
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                size, kind, mflags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if size < 16:
                    raise OSError("malformed netlink message")
                if seq == self.seq:
                    if kind == self.NLMSG_DONE:
                        return replies
                    if kind == self.NLMSG_ERROR:
                        err = struct.unpack_from("=i", data, off + 16)[0]
                        if err:
                            raise OSError(-err, os.strerror(-err))
                        return replies
                    replies.append(data[off + 20:off + size])  # after nlmsghdr + genlmsghdr
                    if not mflags & self.NLM_F_MULTI:
                        return replies
                off += (size + 3) & ~3

    def _dests(self, address, port):
        svc = (self._nla(self.SVC_AF, struct.pack("=H", socket.AF_INET))
               + self._nla(self.SVC_PROTOCOL, struct.pack("=H", socket.IPPROTO_TCP))
               + self._nla(self.SVC_ADDR, socket.inet_aton(address) + b"\0" * 12)
               + self._nla(self.SVC_PORT, struct.pack("!H", port)))
        return self._request(self.family, self.IPVS_CMD_GET_DEST,
                             self._nla(self.IPVS_CMD_ATTR_SERVICE, svc), dump=True)

    def dest_count(self, address, port):
        """Destinations of the TCP service address:port (0 when it is absent)."""
        return len(self._dests(address, port))

    def dest_weights(self, address, port):
        """{"ADDR:PORT": weight} of the IPv4 destinations of the TCP service
        address:port (empty when it is absent)."""
        out = {}
        for reply in self._dests(address, port):
            dest = self._attrs(self._attrs(reply).get(self.IPVS_CMD_ATTR_DEST, b""))
            addr = socket.inet_ntoa(dest[self.DEST_ADDR][:4])
            dport = struct.unpack("!H", dest[self.DEST_PORT][:2])[0]
            out[f"{addr}:{dport}"] = struct.unpack("=I", dest[self.DEST_WEIGHT][:4])[0]
        return out

    def close(self):
        self.sock.close()
