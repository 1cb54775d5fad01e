{{/* Names and labels. */}}
{{- define "eventer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eventer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "eventer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eventer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "eventer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: event-exporter
{{- end -}}

{{- define "eventer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "eventer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "eventer.secretName" -}}
{{- default (include "eventer.fullname" .) .Values.eventer.existingSecret -}}
{{- end -}}

{{- define "eventer.leaseName" -}}
{{- default (include "eventer.fullname" .) .Values.eventer.leaderElection.leaseName -}}
{{- end -}}

{{- define "eventer.checkpointName" -}}
{{- default (printf "%s-checkpoint" (include "eventer.fullname" .)) .Values.eventer.checkpoint.configMapName -}}
{{- end -}}

{{/*
One URI option value, percent-encoded for a query string. Whole numbers from a values file
arrive as floats; print them as integers (3145728, not 3.145728e+06).
*/}}
{{- define "eventer.q" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- urlquery . -}}
{{- end -}}
{{- end -}}

{{/* A comma list from a string ("Node,Pod") or a list ([Node, Pod]). */}}
{{- define "eventer.commaList" -}}
{{- if kindIs "slice" . -}}
{{- $items := list -}}
{{- range . -}}{{- $items = append $items (include "eventer.q" .) -}}{{- end -}}
{{- join "," $items -}}
{{- else if . -}}
{{- $items := list -}}
{{- range (splitList "," (toString .)) -}}
{{- if trim . -}}{{- $items = append $items (include "eventer.q" (trim .)) -}}{{- end -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}
{{- end -}}

{{/*
Extra options of a sink: {key: value} or {key: [v1, v2]} (repeated). Secrets may not be
given this way. Input: dict "options" <map> "sink" <name>. Output: k=v&k=v.
*/}}
{{- define "eventer.extraOptions" -}}
{{- $pairs := list -}}
{{- range $k, $v := .options -}}
{{- $name := lower $k -}}
{{- /* eventer's own rule for secret option names, and the chat sinks' webhooks. */ -}}
{{- if or (has $name (list "access_token" "sign" "secret" "token" "password" "pw" "accesskeyid" "accesskeysecret" "securitytoken" "writekey" "key" "apikey" "api_key" "webhook")) (hasSuffix "secret" $name) (hasSuffix "token" $name) (hasSuffix "password" $name) -}}
{{- fail (printf "eventer.sinks.%s.options.%s: secrets do not belong in values that end up in the Deployment; use the %s sink's own keys (stored in a Secret) or existingSecret" $.sink $k $.sink) -}}
{{- end -}}
{{- if kindIs "slice" $v -}}
{{- range $v -}}{{- $pairs = append $pairs (printf "%s=%s" $k (include "eventer.q" .)) -}}{{- end -}}
{{- else -}}
{{- $pairs = append $pairs (printf "%s=%s" $k (include "eventer.q" $v)) -}}
{{- end -}}
{{- end -}}
{{- join "&" $pairs -}}
{{- end -}}

{{/* Whether DingTalk requests are signed (non-empty output means yes). */}}
{{- define "eventer.dingtalkSigned" -}}
{{- $d := .Values.eventer.sinks.dingtalk -}}
{{- if .Values.eventer.existingSecret -}}
{{- if $d.signFromExistingSecret -}}yes{{- end -}}
{{- else if $d.secret -}}yes{{- end -}}
{{- end -}}

{{/* Whether the SLS AccessKey comes from the chart's Secret (values). */}}
{{- define "eventer.slsKeysFromValues" -}}
{{- $s := .Values.eventer.sinks.sls -}}
{{- if and (not .Values.eventer.existingSecret) (or $s.accessKeyId $s.accessKeySecret) -}}
{{- if not (and $s.accessKeyId $s.accessKeySecret) -}}
{{- fail "eventer.sinks.sls: set both accessKeyId and accessKeySecret, or neither (to use the node's RAM role)" -}}
{{- end -}}
yes
{{- end -}}
{{- end -}}

{{/* --sink=dingtalk:... , ACK chart keys: level, label, token, monitorkinds, monitornamespaces. */}}
{{- define "eventer.dingtalkUri" -}}
{{- $d := .Values.eventer.sinks.dingtalk -}}
{{- if not (or $d.token .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.dingtalk.token is required (the robot's access_token), or set eventer.existingSecret to a Secret with a dingtalk-token key" -}}
{{- end -}}
{{- $q := list "access_token=${DINGTALK_TOKEN}" -}}
{{- if include "eventer.dingtalkSigned" . -}}{{- $q = append $q "sign=${DINGTALK_SECRET}" -}}{{- end -}}
{{- if $d.level -}}{{- $q = append $q (printf "level=%s" (include "eventer.q" $d.level)) -}}{{- end -}}
{{- if kindIs "slice" $d.label -}}
{{- range $d.label -}}{{- $q = append $q (printf "label=%s" (include "eventer.q" .)) -}}{{- end -}}
{{- else if $d.label -}}
{{- $q = append $q (printf "label=%s" (include "eventer.q" $d.label)) -}}
{{- end -}}
{{- $kinds := include "eventer.commaList" $d.monitorkinds -}}
{{- if $kinds -}}{{- $q = append $q (printf "kinds=%s" $kinds) -}}{{- end -}}
{{- $namespaces := include "eventer.commaList" $d.monitornamespaces -}}
{{- if $namespaces -}}{{- $q = append $q (printf "namespaces=%s" $namespaces) -}}{{- end -}}
{{- if and $d.msgType (ne (lower (toString $d.msgType)) "text") -}}
{{- $q = append $q (printf "msg_type=%s" (include "eventer.q" $d.msgType)) -}}
{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $d.options "sink" "dingtalk") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- printf "dingtalk:%s?%s" $d.webhook (join "&" $q) -}}
{{- end -}}

{{/* Label options from a string or a list: label=a&label=b. */}}
{{- define "eventer.labelOptions" -}}
{{- $q := list -}}
{{- if kindIs "slice" . -}}
{{- range . -}}{{- $q = append $q (printf "label=%s" (include "eventer.q" .)) -}}{{- end -}}
{{- else if . -}}
{{- $q = append $q (printf "label=%s" (include "eventer.q" .)) -}}
{{- end -}}
{{- join "&" $q -}}
{{- end -}}

{{/* --sink=wecom:... , the WeCom group robot. */}}
{{- define "eventer.wecomUri" -}}
{{- $w := .Values.eventer.sinks.wecom -}}
{{- if not (or $w.key .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.wecom.key is required (the robot's key), or set eventer.existingSecret to a Secret with a wecom-key key" -}}
{{- end -}}
{{- $q := list "key=${WECOM_KEY}" -}}
{{- if $w.level -}}{{- $q = append $q (printf "level=%s" (include "eventer.q" $w.level)) -}}{{- end -}}
{{- $labels := include "eventer.labelOptions" $w.label -}}
{{- if $labels -}}{{- $q = append $q $labels -}}{{- end -}}
{{- if and $w.msgType (ne (lower (toString $w.msgType)) "text") -}}
{{- $q = append $q (printf "msg_type=%s" (include "eventer.q" $w.msgType)) -}}
{{- end -}}
{{- $mentioned := include "eventer.commaList" $w.mentionedList -}}
{{- if $mentioned -}}{{- $q = append $q (printf "mentioned_list=%s" $mentioned) -}}{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $w.options "sink" "wecom") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- printf "wecom:%s?%s" $w.webhook (join "&" $q) -}}
{{- end -}}

{{/* --sink=wechat:... , kube-eventer's WeCom app. */}}
{{- define "eventer.wechatUri" -}}
{{- $w := .Values.eventer.sinks.wechat -}}
{{- if not (and $w.corpId (toString $w.agentId)) -}}
{{- fail "eventer.sinks.wechat.corpId and eventer.sinks.wechat.agentId are required when the WeCom app sink is enabled" -}}
{{- end -}}
{{- if not (or $w.corpSecret .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.wechat.corpSecret is required (the app's Secret), or set eventer.existingSecret to a Secret with a wechat-corp-secret key" -}}
{{- end -}}
{{- $agent := $w.agentId -}}
{{- /* YAML numbers reach templates as floats: 1000002, not 1.000002e+06. */ -}}
{{- if kindIs "float64" $agent -}}{{- $agent = int64 $agent -}}{{- end -}}
{{- $q := list (printf "corp_id=%s" (include "eventer.q" $w.corpId)) "corp_secret=${WECHAT_CORP_SECRET}" (printf "agent_id=%s" (include "eventer.q" (toString $agent))) -}}
{{- $to := include "eventer.commaList" $w.toUser -}}
{{- if $to -}}{{- $q = append $q (printf "to_user=%s" $to) -}}{{- end -}}
{{- if $w.endpoint -}}{{- $q = append $q (printf "endpoint=%s" (include "eventer.q" $w.endpoint)) -}}{{- end -}}
{{- if $w.level -}}{{- $q = append $q (printf "level=%s" (include "eventer.q" $w.level)) -}}{{- end -}}
{{- $labels := include "eventer.labelOptions" $w.label -}}
{{- if $labels -}}{{- $q = append $q $labels -}}{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $w.options "sink" "wechat") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- printf "wechat:?%s" (join "&" $q) -}}
{{- end -}}

{{/* Whether Lark requests are signed (non-empty output means yes). */}}
{{- define "eventer.larkSigned" -}}
{{- $l := .Values.eventer.sinks.lark -}}
{{- if .Values.eventer.existingSecret -}}
{{- if $l.signFromExistingSecret -}}yes{{- end -}}
{{- else if $l.secret -}}yes{{- end -}}
{{- end -}}

{{/* Level, labels and extra options, shared by the chat sinks. Input: dict "s" <values> "sink" <name>. */}}
{{- define "eventer.chatOptions" -}}
{{- $s := .s -}}
{{- $q := list -}}
{{- if $s.level -}}{{- $q = append $q (printf "level=%s" (include "eventer.q" $s.level)) -}}{{- end -}}
{{- if kindIs "slice" $s.label -}}
{{- range $s.label -}}{{- $q = append $q (printf "label=%s" (include "eventer.q" .)) -}}{{- end -}}
{{- else if $s.label -}}
{{- $q = append $q (printf "label=%s" (include "eventer.q" $s.label)) -}}
{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $s.options "sink" .sink) -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- join "&" $q -}}
{{- end -}}

{{/* --sink=lark:${LARK_WEBHOOK}?... */}}
{{- define "eventer.larkUri" -}}
{{- $l := .Values.eventer.sinks.lark -}}
{{- if not (or $l.webhook .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.lark.webhook is required (the bot's whole webhook URL), or set eventer.existingSecret to a Secret with a lark-webhook key" -}}
{{- end -}}
{{- $q := list -}}
{{- if include "eventer.larkSigned" . -}}{{- $q = append $q "sign=${LARK_SECRET}" -}}{{- end -}}
{{- if and $l.msgType (ne (lower (toString $l.msgType)) "text") -}}
{{- $q = append $q (printf "msg_type=%s" (include "eventer.q" $l.msgType)) -}}
{{- end -}}
{{- $common := include "eventer.chatOptions" (dict "s" $l "sink" "lark") -}}
{{- if $common -}}{{- $q = append $q $common -}}{{- end -}}
{{- if $q -}}{{- printf "lark:${LARK_WEBHOOK}?%s" (join "&" $q) -}}{{- else -}}lark:${LARK_WEBHOOK}{{- end -}}
{{- end -}}

{{/* --sink=slack:${SLACK_WEBHOOK}?... */}}
{{- define "eventer.slackUri" -}}
{{- $s := .Values.eventer.sinks.slack -}}
{{- if not (or $s.webhook .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.slack.webhook is required (the incoming webhook's URL), or set eventer.existingSecret to a Secret with a slack-webhook key" -}}
{{- end -}}
{{- $q := list -}}
{{- $mention := include "eventer.commaList" $s.mention -}}
{{- if $mention -}}{{- $q = append $q (printf "mention=%s" $mention) -}}{{- end -}}
{{- $common := include "eventer.chatOptions" (dict "s" $s "sink" "slack") -}}
{{- if $common -}}{{- $q = append $q $common -}}{{- end -}}
{{- if $q -}}{{- printf "slack:${SLACK_WEBHOOK}?%s" (join "&" $q) -}}{{- else -}}slack:${SLACK_WEBHOOK}{{- end -}}
{{- end -}}

{{/* --sink=sls:... , ACK chart keys: project, logstore. */}}
{{- define "eventer.slsUri" -}}
{{- $s := .Values.eventer.sinks.sls -}}
{{- if not (and $s.project $s.logstore) -}}
{{- fail "eventer.sinks.sls.project and eventer.sinks.sls.logstore are required when the SLS sink is enabled" -}}
{{- end -}}
{{- $q := list (printf "project=%s" (include "eventer.q" $s.project)) (printf "logStore=%s" (include "eventer.q" $s.logstore)) -}}
{{- if $s.region -}}{{- $q = append $q (printf "regionId=%s" (include "eventer.q" $s.region)) -}}{{- end -}}
{{- if $s.endpoint -}}{{- $q = append $q (printf "endpoint=%s" (include "eventer.q" $s.endpoint)) -}}{{- end -}}
{{- if not (kindIs "invalid" $s.internal) -}}{{- $q = append $q (printf "internal=%t" (eq (toString $s.internal) "true")) -}}{{- end -}}
{{- if $s.topic -}}{{- $q = append $q (printf "topic=%s" (include "eventer.q" $s.topic)) -}}{{- end -}}
{{- range $k, $v := $s.labels -}}
{{- $q = append $q (printf "label=%s,%s" (include "eventer.q" $k) (include "eventer.q" $v)) -}}
{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $s.options "sink" "sls") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- printf "sls:?%s" (join "&" $q) -}}
{{- end -}}

{{/*
One host:port or URL as a URI option value: percent-encoded, but with ":" and "/" kept
(legal in a query), so that the arguments read as the guides write them.
*/}}
{{- define "eventer.qAddress" -}}
{{- include "eventer.q" . | replace "%3A" ":" | replace "%2F" "/" -}}
{{- end -}}

{{/* Whether the Kafka sink logs in with SASL (non-empty output means yes). */}}
{{- define "eventer.kafkaSasl" -}}
{{- $k := .Values.eventer.sinks.kafka -}}
{{- if $k.user -}}
{{- if not (or $k.password .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.kafka.password is required with user (the SASL password), or set eventer.existingSecret to a Secret with a kafka-password key" -}}
{{- end -}}
yes
{{- else if and $k.password (not .Values.eventer.existingSecret) -}}
{{- fail "eventer.sinks.kafka.user is required with password (the SASL user)" -}}
{{- end -}}
{{- end -}}

{{/* Where the Kafka sink's TLS files from tlsSecret are mounted. */}}
{{- define "eventer.kafkaTlsDir" -}}/etc/eventer-tls/kafka{{- end -}}

{{/* Whether TLS files are mounted from eventer.sinks.kafka.tlsSecret (non-empty output means yes). */}}
{{- define "eventer.kafkaTlsSecret" -}}
{{- $t := .Values.eventer.sinks.kafka.tlsSecret -}}
{{- if $t.name -}}
{{- if ne (empty $t.cert) (empty $t.key) -}}
{{- fail "eventer.sinks.kafka.tlsSecret: give both cert and key (the keys of the client certificate and its private key), or neither" -}}
{{- end -}}
{{- if not (or $t.ca $t.cert) -}}
{{- fail "eventer.sinks.kafka.tlsSecret: name is set, but neither ca nor cert/key names a key of the Secret" -}}
{{- end -}}
yes
{{- else if or $t.cert $t.key -}}
{{- fail "eventer.sinks.kafka.tlsSecret.cert and .key need tlsSecret.name, the Secret that holds them" -}}
{{- end -}}
{{- end -}}

{{/* --sink=kafka:?brokers=...&... */}}
{{- define "eventer.kafkaUri" -}}
{{- $k := .Values.eventer.sinks.kafka -}}
{{- if not $k.brokers -}}
{{- fail "eventer.sinks.kafka.brokers is required: a list of bootstrap brokers, host:port" -}}
{{- end -}}
{{- $q := list -}}
{{- /* values.schema.json checks that each is host:port. */ -}}
{{- range $k.brokers -}}
{{- $q = append $q (printf "brokers=%s" (include "eventer.qAddress" .)) -}}
{{- end -}}
{{- if $k.topic -}}{{- $q = append $q (printf "eventstopic=%s" (include "eventer.q" $k.topic)) -}}{{- end -}}
{{- if $k.compression -}}{{- $q = append $q (printf "compression=%s" (include "eventer.q" $k.compression)) -}}{{- end -}}
{{- if $k.format -}}{{- $q = append $q (printf "format=%s" (include "eventer.q" $k.format)) -}}{{- end -}}
{{- if $k.partitionBy -}}{{- $q = append $q (printf "partition_by=%s" (include "eventer.q" $k.partitionBy)) -}}{{- end -}}
{{- if include "eventer.kafkaSasl" . -}}
{{- $q = append $q (printf "user=%s" (include "eventer.q" $k.user)) -}}
{{- $q = append $q "password=${KAFKA_PASSWORD}" -}}
{{- end -}}
{{- if $k.mechanism -}}{{- $q = append $q (printf "mechanism=%s" (include "eventer.q" $k.mechanism)) -}}{{- end -}}
{{- if $k.tls -}}{{- $q = append $q "tls=true" -}}{{- end -}}
{{- if include "eventer.kafkaTlsSecret" . -}}
{{- $dir := include "eventer.kafkaTlsDir" . -}}
{{- if $k.tlsSecret.ca -}}{{- $q = append $q (printf "cacert=%s/ca.crt" $dir) -}}{{- end -}}
{{- if $k.tlsSecret.cert -}}{{- $q = append $q (printf "cert=%s/tls.crt&key=%s/tls.key" $dir $dir) -}}{{- end -}}
{{- end -}}
{{- if $k.insecureSkipVerify -}}{{- $q = append $q "insecuressl=true" -}}{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $k.options "sink" "kafka") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- printf "kafka:?%s" (join "&" $q) -}}
{{- end -}}

{{/*
How the Elasticsearch sink authenticates: "basic" (esUserName, esUserSecret), "apiKey" or
nothing.
*/}}
{{- define "eventer.esAuth" -}}
{{- $s := .Values.eventer.sinks.elasticsearch -}}
{{- $apiKey := $s.apiKey -}}
{{- if .Values.eventer.existingSecret -}}
{{- $apiKey = $s.apiKeyFromExistingSecret -}}
{{- else if and $s.user (not $s.password) -}}
{{- fail "eventer.sinks.elasticsearch.password is required with user, or set eventer.existingSecret to a Secret with an elasticsearch-password key" -}}
{{- else if and $s.password (not $s.user) -}}
{{- fail "eventer.sinks.elasticsearch.user is required with password (basic authentication)" -}}
{{- end -}}
{{- if and $s.user $apiKey -}}
{{- fail "eventer.sinks.elasticsearch: give user and password or an API key, not both" -}}
{{- else if $s.user -}}basic
{{- else if $apiKey -}}apiKey
{{- end -}}
{{- end -}}

{{/* --sink=elasticsearch:?nodes=...&... (or opensearch:) */}}
{{- define "eventer.elasticsearchUri" -}}
{{- $s := .Values.eventer.sinks.elasticsearch -}}
{{- if not $s.nodes -}}
{{- fail "eventer.sinks.elasticsearch.nodes is required: a list of the cluster's URLs, http(s)://host:port" -}}
{{- end -}}
{{- $q := list -}}
{{- /* values.schema.json checks that each is an http(s) URL. */ -}}
{{- range $s.nodes -}}
{{- if regexMatch "^[a-zA-Z]+://[^/?#]*@" (toString .) -}}
{{- fail "eventer.sinks.elasticsearch.nodes: credentials do not belong in a node's URL, which ends up in the Deployment; use user and password (stored in a Secret)" -}}
{{- end -}}
{{- $q = append $q (printf "nodes=%s" (include "eventer.qAddress" .)) -}}
{{- end -}}
{{- if $s.index -}}{{- $q = append $q (printf "index=%s" (include "eventer.q" $s.index)) -}}{{- end -}}
{{- if $s.useNamespace -}}{{- $q = append $q "use_namespace=true" -}}{{- end -}}
{{- with $s.ver -}}{{- $q = append $q (printf "ver=%s" (include "eventer.q" .)) -}}{{- end -}}
{{- $auth := include "eventer.esAuth" . -}}
{{- if eq $auth "basic" -}}
{{- $q = append $q (printf "esUserName=%s" (include "eventer.q" $s.user)) -}}
{{- $q = append $q "esUserSecret=${ES_PASSWORD}" -}}
{{- else if eq $auth "apiKey" -}}
{{- $q = append $q "apiKey=${ES_API_KEY}" -}}
{{- end -}}
{{- if $s.pipeline -}}{{- $q = append $q (printf "pipeline=%s" (include "eventer.q" $s.pipeline)) -}}{{- end -}}
{{- if $s.clusterName -}}{{- $q = append $q (printf "cluster_name=%s" (include "eventer.q" $s.clusterName)) -}}{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $s.options "sink" "elasticsearch") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- printf "%s:?%s" (ternary "opensearch" "elasticsearch" (eq $s.openSearch true)) (join "&" $q) -}}
{{- end -}}

{{/* The ConfigMap holding the webhook's body template, if any (in the release's namespace). */}}
{{- define "eventer.webhookTemplateMap" -}}
{{- $w := .Values.eventer.sinks.webhook -}}
{{- if $w.enabled -}}
{{- if $w.existingConfigMap -}}{{- $w.existingConfigMap -}}
{{- else if $w.template -}}{{- printf "%s-webhook-body" (include "eventer.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whether webhook bodies are signed (non-empty output means yes). */}}
{{- define "eventer.webhookSigned" -}}
{{- $w := .Values.eventer.sinks.webhook -}}
{{- if .Values.eventer.existingSecret -}}{{- if $w.signFromExistingSecret -}}yes{{- end -}}
{{- else if $w.signSecret -}}yes
{{- end -}}
{{- end -}}

{{/* --sink=webhook:... */}}
{{- define "eventer.webhookUri" -}}
{{- $w := .Values.eventer.sinks.webhook -}}
{{- if not $w.url -}}
{{- fail "eventer.sinks.webhook.url is required when the webhook sink is enabled" -}}
{{- end -}}
{{- $q := list -}}
{{- if $w.method -}}{{- $q = append $q (printf "method=%s" (include "eventer.q" $w.method)) -}}{{- end -}}
{{- if $w.level -}}{{- $q = append $q (printf "level=%s" (include "eventer.q" $w.level)) -}}{{- end -}}
{{- range $k, $v := $w.headers -}}{{- $q = append $q (printf "header=%s" (include "eventer.q" (printf "%s=%v" $k $v))) -}}{{- end -}}
{{- $map := include "eventer.webhookTemplateMap" . -}}
{{- if $map -}}
{{- $q = append $q (printf "custom_body_configmap=%s&custom_body_configmap_namespace=%s" $map .Release.Namespace) -}}
{{- end -}}
{{- if include "eventer.webhookSigned" . -}}{{- $q = append $q "sign_secret=${WEBHOOK_SIGN_SECRET}" -}}{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $w.options "sink" "webhook") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- if $q -}}
{{- printf "webhook:%s%s%s" $w.url (ternary "&" "?" (contains "?" $w.url)) (join "&" $q) -}}
{{- else -}}
{{- printf "webhook:%s" $w.url -}}
{{- end -}}
{{- end -}}

{{- define "eventer.stdoutUri" -}}
{{- $o := .Values.eventer.sinks.stdout -}}
{{- $q := list -}}
{{- if and $o.format (ne (toString $o.format) "text") -}}{{- $q = append $q (printf "format=%s" (include "eventer.q" $o.format)) -}}{{- end -}}
{{- $extra := include "eventer.extraOptions" (dict "options" $o.options "sink" "stdout") -}}
{{- if $extra -}}{{- $q = append $q $extra -}}{{- end -}}
{{- if $q -}}{{- printf "stdout?%s" (join "&" $q) -}}{{- else -}}stdout{{- end -}}
{{- end -}}

{{/* The container's arguments, as a YAML list. */}}
{{- define "eventer.args" -}}
{{- $e := .Values.eventer -}}
{{- $sinks := list -}}
{{- if $e.sinks.dingtalk.enabled -}}{{- $sinks = append $sinks (include "eventer.dingtalkUri" .) -}}{{- end -}}
{{- if $e.sinks.lark.enabled -}}{{- $sinks = append $sinks (include "eventer.larkUri" .) -}}{{- end -}}
{{- if $e.sinks.slack.enabled -}}{{- $sinks = append $sinks (include "eventer.slackUri" .) -}}{{- end -}}
{{- if $e.sinks.sls.enabled -}}{{- $sinks = append $sinks (include "eventer.slsUri" .) -}}{{- end -}}
{{- if $e.sinks.kafka.enabled -}}{{- $sinks = append $sinks (include "eventer.kafkaUri" .) -}}{{- end -}}
{{- if $e.sinks.elasticsearch.enabled -}}{{- $sinks = append $sinks (include "eventer.elasticsearchUri" .) -}}{{- end -}}
{{- if $e.sinks.wecom.enabled -}}{{- $sinks = append $sinks (include "eventer.wecomUri" .) -}}{{- end -}}
{{- if $e.sinks.wechat.enabled -}}{{- $sinks = append $sinks (include "eventer.wechatUri" .) -}}{{- end -}}
{{- if $e.sinks.webhook.enabled -}}{{- $sinks = append $sinks (include "eventer.webhookUri" .) -}}{{- end -}}
{{- if $e.sinks.stdout.enabled -}}{{- $sinks = append $sinks (include "eventer.stdoutUri" .) -}}{{- end -}}
{{- range $e.extraSinks -}}{{- $sinks = append $sinks . -}}{{- end -}}
{{- if or $e.sinks.eventbridge.enabled $e.sinks.eventbridge.enable -}}
{{- fail "eventer.sinks.eventbridge: eventer has no EventBridge sink; use eventer.sinks.sls, eventer.sinks.dingtalk or eventer.extraSinks" -}}
{{- end -}}
{{- if and (not $sinks) (not $e.config) -}}
{{- fail "no sink: enable one of eventer.sinks.dingtalk, wecom, wechat, lark, slack, sls, kafka, elasticsearch, webhook or stdout, or give eventer.extraSinks or eventer.config" -}}
{{- end -}}
{{- if and (not $e.source) (not $e.config) -}}
{{- fail "eventer.source is empty: give a source URI (kubernetes:https://kubernetes.default), or one in eventer.config" -}}
{{- end -}}
{{- if and (gt (int $e.replicas) 1) (not $e.leaderElection.enabled) -}}
{{- fail "eventer.replicas > 1 needs eventer.leaderElection.enabled, or every replica sends every event" -}}
{{- end -}}
{{- $args := list -}}
{{- if $e.config -}}{{- $args = append $args "--config=/etc/eventer/eventer.yaml" -}}{{- end -}}
{{- if $e.source -}}{{- $args = append $args (printf "--source=%s" $e.source) -}}{{- end -}}
{{- range $sinks -}}{{- $args = append $args (printf "--sink=%s" .) -}}{{- end -}}
{{- if $e.checkpoint.enabled -}}
{{- $args = append $args (printf "--checkpoint=configmap:%s/%s" .Release.Namespace (include "eventer.checkpointName" .)) -}}
{{- end -}}
{{- if $e.leaderElection.enabled -}}
{{- $args = append $args "--leader-elect" -}}
{{- $args = append $args (printf "--leader-elect-lease-name=%s" (include "eventer.leaseName" .)) -}}
{{- $args = append $args (printf "--leader-elect-namespace=%s" .Release.Namespace) -}}
{{- end -}}
{{- $args = append $args (printf "--healthz-port=%d" (int $e.healthz.port)) -}}
{{- if $e.frequency -}}{{- $args = append $args (printf "--frequency=%s" $e.frequency) -}}{{- end -}}
{{- if $e.shutdownTimeout -}}{{- $args = append $args (printf "--shutdown-timeout=%s" $e.shutdownTimeout) -}}{{- end -}}
{{- if $e.livenessTimeout -}}{{- $args = append $args (printf "--liveness-timeout=%s" $e.livenessTimeout) -}}{{- end -}}
{{- if $e.logFormat -}}{{- $args = append $args (printf "--log-format=%s" $e.logFormat) -}}{{- end -}}
{{- if gt (int $e.verbosity) 0 -}}{{- $args = append $args (printf "-%s" (repeat (int $e.verbosity) "v")) -}}{{- end -}}
{{- range $e.extraArgs -}}{{- $args = append $args . -}}{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{/*
"true" when the SLS sink takes its credentials from RRSA; both ARNs are then required.
*/}}
{{- define "eventer.rrsa" -}}
{{- $s := .Values.eventer.sinks.sls -}}
{{- if and $s.enabled $s.rrsa $s.rrsa.enabled -}}
{{- if not (and $s.rrsa.roleArn $s.rrsa.oidcProviderArn) -}}
{{- fail "eventer.sinks.sls.rrsa: roleArn and oidcProviderArn are required when RRSA is enabled" -}}
{{- end -}}
true
{{- end -}}
{{- end }}

{{/*
The RAM role's name (the last part of eventer.sinks.sls.rrsa.roleArn), with RRSA.
*/}}
{{- define "eventer.rrsaRoleName" -}}
{{- if include "eventer.rrsa" . -}}
{{- .Values.eventer.sinks.sls.rrsa.roleArn | splitList "/" | last -}}
{{- end -}}
{{- end }}
