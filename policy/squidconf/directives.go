package squidconf

import "strings"

// directive reports a line that is neither acl nor http_access nor
// include. Directives that configure Squid itself are listed as not
// relevant; those that change what clients may reach, and directives this
// package does not know, as affecting access.
func (t *translator) directive(s stmt) {
	name := s.fields[0]
	if why, ok := affecting[name]; ok {
		t.skipStmt(s, why, true)
		return
	}
	if why, ok := notRelevant[name]; ok {
		if why == "" {
			why = "not relevant to egressd: it configures Squid itself"
		}
		t.skipStmt(s, why, false)
		return
	}
	for _, p := range notRelevantPrefixes {
		if strings.HasPrefix(name, p) {
			t.skipStmt(s, "not relevant to egressd: it configures Squid itself", false)
			return
		}
	}
	for _, sfx := range notRelevantSuffixes {
		if strings.HasSuffix(name, sfx) {
			t.skipStmt(s, "not relevant to egressd: it configures Squid itself", false)
			return
		}
	}
	t.skipStmt(s, "directive "+name+" is not known to import-squid, which cannot tell whether it changes who may reach what: check it by hand", true)
}

// affecting are directives that change what clients may reach.
var affecting = map[string]string{
	"ssl_bump":                       "ssl_bump rules are not translated: egressd never decrypts TLS, it reads the SNI and splices; allow the names these rules let through (ssl::server_name acls are written like dstdomain)",
	"http_reply_access":              "egressd does not filter responses",
	"adapted_http_access":            "egressd has no content adaptation, so nothing to filter after it",
	"url_rewrite_program":            "egressd does not rewrite or redirect requests",
	"url_rewrite_access":             "egressd does not rewrite or redirect requests",
	"redirect_program":               "egressd does not rewrite or redirect requests",
	"redirector_access":              "egressd does not rewrite or redirect requests",
	"icap_service":                   "egressd has no ICAP or eCAP content filtering",
	"ecap_service":                   "egressd has no ICAP or eCAP content filtering",
	"icap_enable":                    "egressd has no ICAP or eCAP content filtering",
	"ecap_enable":                    "egressd has no ICAP or eCAP content filtering",
	"adaptation_access":              "egressd has no ICAP or eCAP content filtering",
	"adaptation_service_set":         "egressd has no ICAP or eCAP content filtering",
	"adaptation_service_chain":       "egressd has no ICAP or eCAP content filtering",
	"follow_x_forwarded_for":         "src acls then match the X-Forwarded-For address; egressd matches the connection's source address",
	"request_body_max_size":          "egressd does not limit request sizes",
	"reply_body_max_size":            "egressd does not limit response sizes",
	"on_unsupported_protocol":        "egressd denies what is neither TLS nor HTTP on its ports; it does not tunnel other protocols",
	"http_upgrade_request_protocols": "egressd splices every upgraded (101) connection, whatever its protocol",
	"if":                             "Squid conditionals are not evaluated: the lines between if and endif were translated as if the condition held",
	"else":                           "Squid conditionals are not evaluated: the lines after else were translated too",
	"endif":                          "Squid conditionals are not evaluated",
}

// notRelevant are directives about Squid itself; "" gives the generic
// reason.
var notRelevant = map[string]string{
	"http_port":                            "not relevant to egressd: it intercepts traffic transparently (listen and intercept sections)",
	"https_port":                           "not relevant to egressd: it intercepts traffic transparently (listen and intercept sections)",
	"cache_peer":                           "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"cache_peer_access":                    "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"cache_peer_domain":                    "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"never_direct":                         "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"always_direct":                        "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"prefer_direct":                        "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"nonhierarchical_direct":               "not relevant to egressd: it connects to destinations directly, never through a parent proxy",
	"hierarchy_stoplist":                   "",
	"dns_nameservers":                      "not relevant here: egressd's resolver is upstream.resolver (default: the first nameserver in /etc/resolv.conf)",
	"deny_info":                            "not relevant to egressd: it answers a denied HTTP request with 403 and resets a denied TLS connection",
	"auth_param":                           "not relevant by itself: the proxy_auth acls that use it are reported where they are used",
	"external_acl_type":                    "not relevant by itself: the external acls that use it are reported where they are used",
	"icp_access":                           "not relevant to egressd: ICP is Squid's cache protocol",
	"htcp_access":                          "not relevant to egressd: HTCP is Squid's cache protocol",
	"htcp_clr_access":                      "not relevant to egressd: HTCP is Squid's cache protocol",
	"snmp_access":                          "not relevant to egressd: it has no SNMP (it exports Prometheus metrics)",
	"miss_access":                          "not relevant to egressd: it is about Squid's cache",
	"ident_access":                         "",
	"delay_pools":                          "not relevant to egressd: it does not limit bandwidth",
	"delay_class":                          "not relevant to egressd: it does not limit bandwidth",
	"delay_access":                         "not relevant to egressd: it does not limit bandwidth",
	"delay_parameters":                     "not relevant to egressd: it does not limit bandwidth",
	"delay_initial_bucket_level":           "not relevant to egressd: it does not limit bandwidth",
	"client_delay_pools":                   "not relevant to egressd: it does not limit bandwidth",
	"client_delay_access":                  "not relevant to egressd: it does not limit bandwidth",
	"client_delay_parameters":              "not relevant to egressd: it does not limit bandwidth",
	"request_header_access":                "not relevant to egressd: it forwards requests unchanged",
	"reply_header_access":                  "not relevant to egressd: it forwards responses unchanged",
	"request_header_replace":               "not relevant to egressd: it forwards requests unchanged",
	"reply_header_replace":                 "not relevant to egressd: it forwards responses unchanged",
	"request_header_add":                   "not relevant to egressd: it forwards requests unchanged",
	"reply_header_add":                     "not relevant to egressd: it forwards responses unchanged",
	"forwarded_for":                        "not relevant to egressd: it forwards requests unchanged",
	"via":                                  "not relevant to egressd: it forwards requests unchanged",
	"httpd_suppress_version_string":        "",
	"visible_hostname":                     "",
	"unique_hostname":                      "",
	"hostname_aliases":                     "",
	"coredump_dir":                         "",
	"refresh_pattern":                      "",
	"pid_filename":                         "",
	"workers":                              "",
	"cpu_affinity_map":                     "",
	"umask":                                "",
	"mail_from":                            "",
	"mail_program":                         "",
	"error_directory":                      "",
	"error_default_language":               "",
	"err_html_text":                        "",
	"shutdown_lifetime":                    "",
	"half_closed_clients":                  "",
	"tcp_outgoing_address":                 "",
	"tcp_outgoing_tos":                     "",
	"tcp_outgoing_mark":                    "",
	"clientside_tos":                       "",
	"clientside_mark":                      "",
	"qos_flows":                            "",
	"forward_max_tries":                    "",
	"connect_retries":                      "",
	"retry_on_error":                       "",
	"strip_query_terms":                    "",
	"buffered_logs":                        "",
	"debug_options":                        "",
	"append_domain":                        "",
	"hosts_file":                           "",
	"ignore_unknown_nameservers":           "",
	"check_hostnames":                      "",
	"allow_underscore":                     "",
	"positive_dns_ttl":                     "",
	"negative_dns_ttl":                     "",
	"negative_ttl":                         "",
	"range_offset_limit":                   "",
	"quick_abort_min":                      "",
	"quick_abort_max":                      "",
	"quick_abort_pct":                      "",
	"minimum_expiry_time":                  "",
	"relaxed_header_parser":                "",
	"collapsed_forwarding":                 "",
	"detect_broken_pconn":                  "",
	"high_response_time_warning":           "",
	"high_page_fault_warning":              "",
	"high_memory_warning":                  "",
	"announce_period":                      "",
	"send_hit":                             "",
	"store_miss":                           "",
	"cache":                                "not relevant to egressd: it decides what Squid caches, not who may reach what",
	"ssl_engine":                           "",
	"ssl_unclean_shutdown":                 "",
	"chunked_request_body_max_size":        "",
	"uri_whitespace":                       "",
	"httpd_accel_with_proxy":               "",
	"http_accel_surrogate_remote":          "",
	"vary_ignore_expire":                   "",
	"zph_mode":                             "",
	"max_filedescriptors":                  "",
	"logformat":                            "",
	"access_log":                           "",
	"cache_log":                            "",
	"cache_store_log":                      "",
	"logfile_rotate":                       "",
	"logfile_daemon":                       "",
	"pinger_enable":                        "",
	"pinger_program":                       "",
	"configuration_includes_quoted_values": "",
}

var notRelevantPrefixes = []string{
	"cache_", "memory_", "maximum_", "minimum_", "store_", "ipcache_", "fqdncache_",
	"dns_", "icp_", "htcp_", "snmp_", "wccp", "digest_", "netdb_", "sslcrtd_",
	"sslproxy_", "tls_", "ftp_", "log_", "client_", "server_", "pconn_",
	"request_header_max", "reply_header_max", "read_", "write_", "update_headers",
	"persistent_", "balance_on_", "unlinkd_", "diskd_", "coredump_", "mcast_",
	"offline_", "dead_peer", "icon_", "global_internal", "short_icon", "reload_",
	"ignore_", "auth_", "authenticate_", "max_", "paranoid_", "mime_",
	"refresh_", "sporadic_", "eui_", "background_ping", "query_icmp", "test_reachability",
	"shared_", "hopeless_", "happy_eyeballs", "force_request_body", "spoof_client_ip",
}

var notRelevantSuffixes = []string{"_timeout", "_lifetime", "_children", "_ttl", "_size", "_log"}
