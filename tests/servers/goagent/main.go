// goagent: a Flyte agent server written in Go, for testing `flyte-agents conformance` against a second language.
//
// It serves two task types of its own, speaking flyteidl 1.16.8's wire protocol exactly as propeller calls it:
//   - go_echo (async, AsyncAgentService): CreateTask keeps the inputs in resource_meta, GetTask reports RUNNING until
//     -run-for has passed, then SUCCEEDED with the inputs as outputs (an inline LiteralMap); DeleteTask is idempotent.
//   - go_echo_sync (sync, SyncAgentService.ExecuteTaskSync): header, inputs, close -> one header with the Resource.
//
// -fault selects one real misbehaviour, each meant to be caught by exactly one conformance check.
// It prints "serving HOST:PORT" on stdout once it accepts connections (-listen 127.0.0.1:0 picks a free port);
// -tls serves TLS with a throwaway self-signed certificate.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/flyteorg/flyte/flyteidl/gen/pb-go/flyteidl/admin"
	"github.com/flyteorg/flyte/flyteidl/gen/pb-go/flyteidl/core"
	"github.com/flyteorg/flyte/flyteidl/gen/pb-go/flyteidl/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	asyncType = "go_echo"
	syncType  = "go_echo_sync"
)

// The fault variants; each description says what the server does wrong.
var faults = map[string]string{
	"no-metadata":         "AgentMetadataService is not registered (ListAgents/GetAgent answer UNIMPLEMENTED)",
	"wrong-is-sync":       "the async go_echo agent is listed with is_sync=true",
	"slow-list":           "ListAgents answers only after -list-delay (default longer than propeller's 3 s timeout)",
	"empty-resource-meta": "CreateTask answers an empty resource_meta",
	"never-terminal":      "GetTask answers RUNNING forever",
	"sync-two-responses":  "ExecuteTaskSync sends two header responses",
	"sync-no-response":    "ExecuteTaskSync closes the stream with OK and no response",
	"not-serving":         "grpc.health.v1 reports NOT_SERVING",
}

type config struct {
	fault     string
	listDelay time.Duration
	runFor    time.Duration
}

func (c config) agents() []*admin.Agent {
	return []*admin.Agent{
		{Name: "Go Echo Agent", IsSync: c.fault == "wrong-is-sync", SupportedTaskTypes: []string{asyncType},
			SupportedTaskCategories: []*admin.TaskCategory{{Name: asyncType, Version: 0}}},
		{Name: "Go Echo Sync Agent", IsSync: true, SupportedTaskTypes: []string{syncType},
			SupportedTaskCategories: []*admin.TaskCategory{{Name: syncType, Version: 0}}},
	}
}

// ------------------------------------------------------------------------------------------- metadata service

type metadataServer struct {
	service.UnimplementedAgentMetadataServiceServer
	cfg config
}

func (m *metadataServer) ListAgents(ctx context.Context, _ *admin.ListAgentsRequest) (*admin.ListAgentsResponse, error) {
	if m.cfg.fault == "slow-list" {
		select {
		case <-time.After(m.cfg.listDelay):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &admin.ListAgentsResponse{Agents: m.cfg.agents()}, nil
}

func (m *metadataServer) GetAgent(_ context.Context, req *admin.GetAgentRequest) (*admin.GetAgentResponse, error) {
	for _, agent := range m.cfg.agents() {
		if agent.GetName() == req.GetName() {
			return &admin.GetAgentResponse{Agent: agent}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no agent named %q", req.GetName())
}

// ------------------------------------------------------------------------------------------- async service

// jobMeta is what propeller stores between calls: the job is stateless on this side, so a restarted server (or
// another replica) can still answer GetTask and DeleteTask.
type jobMeta struct {
	TaskType string `json:"task_type"`
	DoneAt   int64  `json:"done_at_unix_ms"`
	Outputs  []byte `json:"outputs"` // a serialised core.LiteralMap
}

type asyncServer struct {
	service.UnimplementedAsyncAgentServiceServer
	cfg config
}

func unknownType(taskType string) error {
	return status.Errorf(codes.NotFound, "go agent: no agent serves task type %q (served: %s, %s)",
		taskType, asyncType, syncType)
}

func (a *asyncServer) CreateTask(_ context.Context, req *admin.CreateTaskRequest) (*admin.CreateTaskResponse, error) {
	if req.GetTemplate() == nil {
		return nil, status.Error(codes.InvalidArgument, "go agent: CreateTask without a task template")
	}
	if taskType := req.GetTemplate().GetType(); taskType != asyncType {
		return nil, unknownType(taskType)
	}
	outputs, err := proto.Marshal(inputsOrEmpty(req.GetInputs()))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "go agent: encoding outputs: %v", err)
	}
	meta, err := json.Marshal(jobMeta{asyncType, time.Now().Add(a.cfg.runFor).UnixMilli(), outputs})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "go agent: encoding resource_meta: %v", err)
	}
	if a.cfg.fault == "empty-resource-meta" {
		meta = nil
	}
	// The server's own record of each task it ran (tests match it against propeller's executions).
	log.Printf("CreateTask %s %s: %d inputs", asyncType, req.GetTemplate().GetId().GetName(),
		len(req.GetInputs().GetLiterals()))
	return &admin.CreateTaskResponse{ResourceMeta: meta}, nil
}

// job checks the category and decodes resource_meta, as GetTask and DeleteTask both need.
func job(category *admin.TaskCategory, deprecatedType string, raw []byte) (*jobMeta, error) {
	name := category.GetName()
	if name == "" {
		name = deprecatedType
	}
	if name != asyncType {
		return nil, unknownType(name)
	}
	var meta jobMeta
	if err := json.Unmarshal(raw, &meta); err != nil || meta.TaskType != asyncType {
		return nil, status.Errorf(codes.InvalidArgument, "go agent: resource_meta %q is not one this server wrote",
			truncate(raw))
	}
	return &meta, nil
}

func (a *asyncServer) GetTask(_ context.Context, req *admin.GetTaskRequest) (*admin.GetTaskResponse, error) {
	meta, err := job(req.GetTaskCategory(), req.GetTaskType(), req.GetResourceMeta())
	if err != nil {
		return nil, err
	}
	if a.cfg.fault == "never-terminal" || time.Now().UnixMilli() < meta.DoneAt {
		return &admin.GetTaskResponse{Resource: &admin.Resource{Phase: core.TaskExecution_RUNNING,
			Message: "go_echo job running"}}, nil
	}
	outputs := &core.LiteralMap{}
	if err := proto.Unmarshal(meta.Outputs, outputs); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "go agent: outputs in resource_meta: %v", err)
	}
	return &admin.GetTaskResponse{Resource: &admin.Resource{Phase: core.TaskExecution_SUCCEEDED, Outputs: outputs,
		Message: "go_echo job done"}}, nil
}

func (a *asyncServer) DeleteTask(_ context.Context, req *admin.DeleteTaskRequest) (*admin.DeleteTaskResponse, error) {
	// Nothing to cancel, and deleting twice is the same as deleting once.
	if _, err := job(req.GetTaskCategory(), req.GetTaskType(), req.GetResourceMeta()); err != nil {
		return nil, err
	}
	return &admin.DeleteTaskResponse{}, nil
}

// ------------------------------------------------------------------------------------------- sync service

type syncServer struct {
	service.UnimplementedSyncAgentServiceServer
	cfg config
}

func (s *syncServer) ExecuteTaskSync(stream service.SyncAgentService_ExecuteTaskSyncServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	header := first.GetHeader()
	if header == nil {
		return status.Error(codes.InvalidArgument, "go agent: the first message of ExecuteTaskSync must be the header")
	}
	if taskType := header.GetTemplate().GetType(); taskType != syncType {
		return unknownType(taskType)
	}
	var inputs *core.LiteralMap
	second, err := stream.Recv()
	switch {
	case err == io.EOF: // a task without inputs may close right after the header
	case err != nil:
		return err
	default:
		inputs = second.GetInputs()
	}
	log.Printf("ExecuteTaskSync %s %s: %d inputs", syncType, header.GetTemplate().GetId().GetName(),
		len(inputs.GetLiterals()))
	if s.cfg.fault == "sync-no-response" {
		return nil
	}
	reply := &admin.ExecuteTaskSyncResponse{Res: &admin.ExecuteTaskSyncResponse_Header{
		Header: &admin.ExecuteTaskSyncResponseHeader{Resource: &admin.Resource{Phase: core.TaskExecution_SUCCEEDED,
			Outputs: inputsOrEmpty(inputs), Message: "go_echo_sync done"}}}}
	if err := stream.Send(reply); err != nil {
		return err
	}
	if s.cfg.fault == "sync-two-responses" {
		return stream.Send(reply)
	}
	return nil
}

// ------------------------------------------------------------------------------------------- helpers, main

func inputsOrEmpty(inputs *core.LiteralMap) *core.LiteralMap {
	if inputs == nil {
		return &core.LiteralMap{}
	}
	return inputs
}

func truncate(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}

// selfSigned is a throwaway certificate for -tls: enough to speak TLS on the port (clients cannot verify it).
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "goagent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func faultNames() string {
	names := make([]string, 0, len(faults))
	for name := range faults {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (port 0 picks a free one)")
	fault := flag.String("fault", "", "misbehave on purpose: "+faultNames())
	listDelay := flag.Duration("list-delay", 4*time.Second, "how long ListAgents takes with -fault slow-list")
	runFor := flag.Duration("run-for", 300*time.Millisecond, "how long a go_echo job stays RUNNING")
	useTLS := flag.Bool("tls", false, "serve TLS with a throwaway self-signed certificate")
	flag.Parse()
	if _, ok := faults[*fault]; *fault != "" && !ok {
		fmt.Fprintf(os.Stderr, "error: unknown -fault %q; one of: %s\n", *fault, faultNames())
		os.Exit(2)
	}
	cfg := config{fault: *fault, listDelay: *listDelay, runFor: *runFor}

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	var options []grpc.ServerOption
	if *useTLS {
		cert, err := selfSigned()
		if err != nil {
			log.Fatalf("certificate: %v", err)
		}
		options = append(options, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	}
	server := grpc.NewServer(options...)
	healthServer := health.NewServer()
	healthpb.RegisterHealthServer(server, healthServer)
	offered := []string{service.AsyncAgentService_ServiceDesc.ServiceName, service.SyncAgentService_ServiceDesc.ServiceName}
	service.RegisterAsyncAgentServiceServer(server, &asyncServer{cfg: cfg})
	service.RegisterSyncAgentServiceServer(server, &syncServer{cfg: cfg})
	if cfg.fault != "no-metadata" {
		service.RegisterAgentMetadataServiceServer(server, &metadataServer{cfg: cfg})
		offered = append(offered, service.AgentMetadataService_ServiceDesc.ServiceName)
	}
	state := healthpb.HealthCheckResponse_SERVING
	if cfg.fault == "not-serving" {
		state = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range append(offered, "") {
		healthServer.SetServingStatus(name, state)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.Stop()
	}()
	fmt.Printf("serving %s fault=%q\n", listener.Addr(), cfg.fault)
	if err := server.Serve(listener); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
